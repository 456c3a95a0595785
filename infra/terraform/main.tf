# molten on Azure: queue, state and plugins in one storage account; secrets in Key Vault; the
# model in Azure OpenAI; two Container Apps (ingress, worker) from one image, each with its own
# user-assigned identity holding only the roles its role needs.

resource "random_string" "suffix" {
  length  = 5
  lower   = true
  upper   = false
  numeric = true
  special = false
}

locals {
  # Globally unique names: storage accounts 3-24 lowercase alphanumerics, vaults 3-24.
  unique = "${var.name}${random_string.suffix.result}"
  tags   = merge({ app = "molten" }, var.tags)

  # molten's defaults ([azure] queue, container, table_prefix; [plugins] container).
  queue            = "molten-work"
  poison_queue     = "molten-work-poison"
  state_container  = "molten-state"
  plugin_container = "molten-plugins"
  table_prefix     = "molten"
  tables           = ["replied", "usage", "skillcalls", "counters", "usagedaily", "accepted"]

  # Key Vault secrets molten reads (host/src/azure/key_vault.rs CONFIG_SECRETS, and the
  # secrets skills are granted). The operator sets each (see infra/README.md); none is in a
  # file. The model's endpoint and deployment are not secrets: they are given as environment.
  operator_secrets = [
    "telegram-bot-token",
    "telegram-webhook-secret",
    "slack-signing-secret",
    "slack-bot-token",
    "discord-public-key",
    "admin-token",
    "tavily-api-key",
    "openclaw-gateway-token",
    "openclaw-device-key",
  ]
  # Read from Key Vault only when the environment leaves them unset, which this deployment
  # never does: endpoint and deployment come from Terraform, storage and the model from the
  # managed identity.
  environment_settings = [
    "azure-openai-endpoint",
    "azure-openai-deployment",
    "azure-openai-api-key",
    "storage-connection-string",
  ]
  # Made by molten itself from [graph] (an Entra app's client-credentials token) when the
  # Graph skills are configured; read from Key Vault only if set there directly.
  host_made_secrets = ["graph-token"]
}

resource "azurerm_resource_group" "molten" {
  name     = "rg-${var.name}"
  location = var.location
  tags     = local.tags
}

# ---------------------------------------------------------------- logs

resource "azurerm_log_analytics_workspace" "molten" {
  name                = "log-${var.name}"
  resource_group_name = azurerm_resource_group.molten.name
  location            = azurerm_resource_group.molten.location
  sku                 = "PerGB2018"
  retention_in_days   = var.log_retention_days
  daily_quota_gb      = 1
  tags                = local.tags
}

resource "azurerm_application_insights" "molten" {
  name                = "appi-${var.name}"
  resource_group_name = azurerm_resource_group.molten.name
  location            = azurerm_resource_group.molten.location
  workspace_id        = azurerm_log_analytics_workspace.molten.id
  application_type    = "other"
  tags                = local.tags
}

# ---------------------------------------------------------------- storage

resource "azurerm_storage_account" "molten" {
  name                = "st${local.unique}"
  resource_group_name = azurerm_resource_group.molten.name
  location            = azurerm_resource_group.molten.location
  account_tier        = "Standard"
  # Geo-zone-redundant: a region outage loses no acknowledged message (docs/operations.md).
  account_replication_type        = "GZRS"
  account_kind                    = "StorageV2"
  min_tls_version                 = "TLS1_2"
  https_traffic_only_enabled      = true
  allow_nested_items_to_be_public = false
  # The Azure Files mount of Container Apps authenticates with the account key; everything
  # molten does (queue, tables, blobs) uses the replicas' identities.
  shared_access_key_enabled = true
  tags                      = local.tags

  sas_policy {
    expiration_period = "01.00:00:00"
  }

  blob_properties {
    delete_retention_policy {
      days = 7
    }
    container_delete_retention_policy {
      days = 7
    }
  }

  queue_properties {
    logging {
      delete                = true
      read                  = true
      write                 = true
      version               = "1.0"
      retention_policy_days = 10
    }
  }

  share_properties {
    retention_policy {
      days = 7
    }
  }
}

resource "azurerm_storage_queue" "work" {
  name               = local.queue
  storage_account_id = azurerm_storage_account.molten.id
}

resource "azurerm_storage_queue" "poison" {
  name               = local.poison_queue
  storage_account_id = azurerm_storage_account.molten.id
}

resource "azurerm_storage_container" "state" {
  name                  = local.state_container
  storage_account_id    = azurerm_storage_account.molten.id
  container_access_type = "private"
}

resource "azurerm_storage_container" "plugins" {
  name                  = local.plugin_container
  storage_account_id    = azurerm_storage_account.molten.id
  container_access_type = "private"
}

resource "azurerm_storage_table" "molten" {
  for_each             = toset(local.tables)
  name                 = "${local.table_prefix}${each.key}"
  storage_account_name = azurerm_storage_account.molten.name
}

resource "azurerm_storage_share" "sandboxes" {
  name               = "sandboxes"
  storage_account_id = azurerm_storage_account.molten.id
  quota              = var.sandbox_quota_gb
}

# ---------------------------------------------------------------- secrets

data "azurerm_client_config" "current" {}

resource "azurerm_key_vault" "molten" {
  name                       = "kv-${local.unique}"
  resource_group_name        = azurerm_resource_group.molten.name
  location                   = azurerm_resource_group.molten.location
  tenant_id                  = data.azurerm_client_config.current.tenant_id
  sku_name                   = "standard"
  rbac_authorization_enabled = true
  purge_protection_enabled   = true
  soft_delete_retention_days = 7
  tags                       = local.tags

  network_acls {
    # Container Apps on the consumption plan reach the vault over the public endpoint; only
    # identities with a role on it get in.
    default_action = "Allow"
    bypass         = "AzureServices"
  }
}

# Whoever runs Terraform may set the secrets (infra/README.md), never read them back here.
resource "azurerm_role_assignment" "operator_sets_secrets" {
  scope                = azurerm_key_vault.molten.id
  role_definition_name = "Key Vault Secrets Officer"
  principal_id         = data.azurerm_client_config.current.object_id
}

# ---------------------------------------------------------------- model

resource "azurerm_cognitive_account" "openai" {
  name                          = "oai-${local.unique}"
  resource_group_name           = azurerm_resource_group.molten.name
  location                      = coalesce(var.openai_location, var.location)
  kind                          = "OpenAI"
  sku_name                      = "S0"
  custom_subdomain_name         = "oai-${local.unique}"
  local_auth_enabled            = false
  public_network_access_enabled = true
  # The model never calls out.
  outbound_network_access_restricted = true
  tags                               = local.tags

  identity {
    type = "SystemAssigned"
  }
}

resource "azurerm_cognitive_deployment" "model" {
  name                 = var.openai_model
  cognitive_account_id = azurerm_cognitive_account.openai.id

  model {
    format  = "OpenAI"
    name    = var.openai_model
    version = var.openai_model_version
  }

  sku {
    name     = "GlobalStandard"
    capacity = var.openai_capacity
  }
}

# ---------------------------------------------------------------- identities and roles

resource "azurerm_user_assigned_identity" "ingress" {
  name                = "id-${var.name}-ingress"
  resource_group_name = azurerm_resource_group.molten.name
  location            = azurerm_resource_group.molten.location
  tags                = local.tags
}

resource "azurerm_user_assigned_identity" "worker" {
  name                = "id-${var.name}-worker"
  resource_group_name = azurerm_resource_group.molten.name
  location            = azurerm_resource_group.molten.location
  tags                = local.tags
}

locals {
  # Each grant at the narrowest scope it works at. Both roles open the state store (the
  # ingress reads it for /ready and the admin routes) and load the plugins; only the worker
  # leases and deletes messages, writes sessions and calls the model. Table roles are
  # account-wide: a table is not a scope Azure RBAC offers.
  grants = {
    ingress_queue_send = {
      principal = azurerm_user_assigned_identity.ingress.principal_id
      scope     = azurerm_storage_queue.work.resource_manager_id
      role      = "Storage Queue Data Message Sender"
    }
    # Peeking at and re-queueing poisoned messages (/admin/poison), the queue depth (/ready).
    ingress_poison = {
      principal = azurerm_user_assigned_identity.ingress.principal_id
      scope     = azurerm_storage_queue.poison.resource_manager_id
      role      = "Storage Queue Data Contributor"
    }
    ingress_queue_read = {
      principal = azurerm_user_assigned_identity.ingress.principal_id
      scope     = azurerm_storage_queue.work.resource_manager_id
      role      = "Storage Queue Data Reader"
    }
    ingress_tables = {
      principal = azurerm_user_assigned_identity.ingress.principal_id
      scope     = azurerm_storage_account.molten.id
      role      = "Storage Table Data Contributor"
    }
    ingress_state = {
      principal = azurerm_user_assigned_identity.ingress.principal_id
      scope     = azurerm_storage_container.state.id
      role      = "Storage Blob Data Reader"
    }
    ingress_plugins = {
      principal = azurerm_user_assigned_identity.ingress.principal_id
      scope     = azurerm_storage_container.plugins.id
      role      = "Storage Blob Data Reader"
    }
    ingress_secrets = {
      principal = azurerm_user_assigned_identity.ingress.principal_id
      scope     = azurerm_key_vault.molten.id
      role      = "Key Vault Secrets User"
    }
    worker_queue = {
      principal = azurerm_user_assigned_identity.worker.principal_id
      scope     = azurerm_storage_queue.work.resource_manager_id
      role      = "Storage Queue Data Contributor"
    }
    worker_poison = {
      principal = azurerm_user_assigned_identity.worker.principal_id
      scope     = azurerm_storage_queue.poison.resource_manager_id
      role      = "Storage Queue Data Contributor"
    }
    worker_tables = {
      principal = azurerm_user_assigned_identity.worker.principal_id
      scope     = azurerm_storage_account.molten.id
      role      = "Storage Table Data Contributor"
    }
    worker_state = {
      principal = azurerm_user_assigned_identity.worker.principal_id
      scope     = azurerm_storage_container.state.id
      role      = "Storage Blob Data Contributor"
    }
    worker_plugins = {
      principal = azurerm_user_assigned_identity.worker.principal_id
      scope     = azurerm_storage_container.plugins.id
      role      = "Storage Blob Data Reader"
    }
    worker_secrets = {
      principal = azurerm_user_assigned_identity.worker.principal_id
      scope     = azurerm_key_vault.molten.id
      role      = "Key Vault Secrets User"
    }
    worker_model = {
      principal = azurerm_user_assigned_identity.worker.principal_id
      scope     = azurerm_cognitive_account.openai.id
      role      = "Cognitive Services OpenAI User"
    }
  }
  # Pulling the image from a private registry.
  pulls = var.acr_id == null ? {} : {
    ingress = azurerm_user_assigned_identity.ingress.principal_id
    worker  = azurerm_user_assigned_identity.worker.principal_id
  }
}

resource "azurerm_role_assignment" "molten" {
  for_each             = local.grants
  scope                = each.value.scope
  role_definition_name = each.value.role
  principal_id         = each.value.principal
  principal_type       = "ServicePrincipal"
}

resource "azurerm_role_assignment" "pull" {
  for_each             = local.pulls
  scope                = var.acr_id
  role_definition_name = "AcrPull"
  principal_id         = each.value
  principal_type       = "ServicePrincipal"
}
