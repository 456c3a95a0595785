terraform {
  required_version = ">= 1.6"
  required_providers {
    azurerm = {
      source = "hashicorp/azurerm"
      # 4.70 and later: identity-based KEDA scale rules (custom_scale_rule.identity_id).
      version = ">= 4.70, < 5.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }
}

provider "azurerm" {
  features {
    key_vault {
      # Secrets are set by the operator, never by Terraform: keep them on destroy.
      purge_soft_delete_on_destroy = false
    }
  }
  # Every data-plane call Terraform makes (containers, queues, tables) uses Entra ID, so the
  # account's shared key can stay off for everything but the Azure Files mount.
  storage_use_azuread = true
}
