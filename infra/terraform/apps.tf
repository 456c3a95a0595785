# The Container Apps environment and the two apps. Both run the same image and read all their
# settings from the environment (MOLTEN_*) and Key Vault; neither holds a secret.

resource "azurerm_container_app_environment" "molten" {
  name                       = "cae-${var.name}"
  resource_group_name        = azurerm_resource_group.molten.name
  location                   = azurerm_resource_group.molten.location
  log_analytics_workspace_id = azurerm_log_analytics_workspace.molten.id
  tags                       = local.tags
}

# Users' skill sandboxes, shared by every worker replica so any of them can answer any user.
resource "azurerm_container_app_environment_storage" "sandboxes" {
  name                         = "sandboxes"
  container_app_environment_id = azurerm_container_app_environment.molten.id
  account_name                 = azurerm_storage_account.molten.name
  share_name                   = azurerm_storage_share.sandboxes.name
  access_key                   = azurerm_storage_account.molten.primary_access_key
  access_mode                  = "ReadWrite"
}

locals {
  # What both roles are told; each adds its identity's client id.
  common_env = merge(
    {
      MOLTEN_AZURE_STORAGE_ACCOUNT = azurerm_storage_account.molten.name
      MOLTEN_AZURE_QUEUE           = local.queue
      MOLTEN_AZURE_CONTAINER       = local.state_container
      MOLTEN_AZURE_TABLE_PREFIX    = local.table_prefix
      MOLTEN_PLUGINS_CONTAINER     = local.plugin_container
      MOLTEN_KEY_VAULT_URL         = azurerm_key_vault.molten.vault_uri
      MOLTEN_LLM_PROVIDER          = "azure"
      MOLTEN_LLM_BASE_URL          = azurerm_cognitive_account.openai.endpoint
      MOLTEN_LLM_MODEL             = azurerm_cognitive_deployment.model.name
      MOLTEN_LOG_FORMAT            = "json"
    },
    var.otlp_endpoint == null ? {} : { MOLTEN_OTLP_ENDPOINT = var.otlp_endpoint },
  )
  sandbox_mount = "/mnt/sandboxes"
  # The registry both apps pull from with their identities (AcrPull), when it is private.
  registry_server = var.acr_id == null ? null : "${basename(var.acr_id)}.azurecr.io"
}

resource "azurerm_container_app" "ingress" {
  name                         = "ca-${var.name}-ingress"
  resource_group_name          = azurerm_resource_group.molten.name
  container_app_environment_id = azurerm_container_app_environment.molten.id
  revision_mode                = "Single"
  tags                         = local.tags

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.ingress.id]
  }

  dynamic "registry" {
    for_each = local.registry_server == null ? [] : [local.registry_server]
    content {
      server   = registry.value
      identity = azurerm_user_assigned_identity.ingress.id
    }
  }

  ingress {
    external_enabled = true
    target_port      = 8080
    transport        = "auto"
    traffic_weight {
      latest_revision = true
      percentage      = 100
    }
  }

  template {
    min_replicas = var.ingress_min_replicas
    max_replicas = var.ingress_max_replicas

    http_scale_rule {
      name                = "http"
      concurrent_requests = tostring(var.ingress_concurrent_requests)
    }

    container {
      name   = "molten"
      image  = var.image
      args   = ["serve", "--role", "ingress"]
      cpu    = 0.25
      memory = "0.5Gi"

      dynamic "env" {
        for_each = merge(local.common_env, {
          MOLTEN_AZURE_CLIENT_ID = azurerm_user_assigned_identity.ingress.client_id
        })
        content {
          name  = env.key
          value = env.value
        }
      }

      liveness_probe {
        transport = "HTTP"
        port      = 8080
        path      = "/healthz"
      }

      readiness_probe {
        transport = "HTTP"
        port      = 8080
        path      = "/ready"
      }
    }
  }

  depends_on = [azurerm_role_assignment.molten, azurerm_role_assignment.pull]
}

resource "azurerm_container_app" "worker" {
  name                         = "ca-${var.name}-worker"
  resource_group_name          = azurerm_resource_group.molten.name
  container_app_environment_id = azurerm_container_app_environment.molten.id
  revision_mode                = "Single"
  tags                         = local.tags

  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.worker.id]
  }

  dynamic "registry" {
    for_each = local.registry_server == null ? [] : [local.registry_server]
    content {
      server   = registry.value
      identity = azurerm_user_assigned_identity.worker.id
    }
  }

  template {
    # Scale to zero: KEDA watches the queue (with the worker's identity, no key) and starts a
    # replica when a message waits.
    min_replicas = 0
    max_replicas = var.worker_max_replicas

    custom_scale_rule {
      name             = "queue"
      custom_rule_type = "azure-queue"
      identity_id      = azurerm_user_assigned_identity.worker.id
      metadata = {
        accountName = azurerm_storage_account.molten.name
        queueName   = local.queue
        queueLength = tostring(var.worker_queue_length)
        cloud       = "AzurePublicCloud"
      }
    }

    volume {
      name         = "sandboxes"
      storage_type = "AzureFile"
      storage_name = azurerm_container_app_environment_storage.sandboxes.name
    }

    container {
      name   = "molten"
      image  = var.image
      args   = ["serve", "--role", "worker"]
      cpu    = 0.5
      memory = "1Gi"

      dynamic "env" {
        for_each = merge(
          local.common_env,
          {
            MOLTEN_AZURE_CLIENT_ID = azurerm_user_assigned_identity.worker.client_id
            MOLTEN_SANDBOX_DIR     = local.sandbox_mount
          },
          # Its token comes from Key Vault (openclaw-gateway-token).
          var.enable_openclaw ? { MOLTEN_OPENCLAW_URL = "ws://ca-${var.name}-openclaw" } : {},
        )
        content {
          name  = env.key
          value = env.value
        }
      }

      volume_mounts {
        name = "sandboxes"
        path = local.sandbox_mount
      }
    }
  }

  depends_on = [azurerm_role_assignment.molten, azurerm_role_assignment.pull]
}

# An OpenClaw gateway the workers can hand turns to, reachable only inside the environment.
resource "azurerm_container_app" "openclaw" {
  count                        = var.enable_openclaw ? 1 : 0
  name                         = "ca-${var.name}-openclaw"
  resource_group_name          = azurerm_resource_group.molten.name
  container_app_environment_id = azurerm_container_app_environment.molten.id
  revision_mode                = "Single"
  tags                         = local.tags

  ingress {
    external_enabled = false
    target_port      = 18789
    transport        = "auto"
    traffic_weight {
      latest_revision = true
      percentage      = 100
    }
  }

  template {
    min_replicas = 1
    max_replicas = 1

    container {
      name   = "openclaw"
      image  = coalesce(var.openclaw_image, "unset")
      cpu    = 0.5
      memory = "1Gi"
    }
  }

  lifecycle {
    precondition {
      condition     = var.openclaw_image != null
      error_message = "enable_openclaw needs openclaw_image."
    }
  }
}
