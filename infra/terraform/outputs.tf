output "webhook_base_url" {
  description = "The ingress's public address; the platforms post to /webhook/<platform> under it."
  value       = "https://${azurerm_container_app.ingress.ingress[0].fqdn}"
}

output "webhook_urls" {
  description = "The URL to register with each platform."
  value = {
    telegram = "https://${azurerm_container_app.ingress.ingress[0].fqdn}/webhook/telegram"
    slack    = "https://${azurerm_container_app.ingress.ingress[0].fqdn}/webhook/slack"
    discord  = "https://${azurerm_container_app.ingress.ingress[0].fqdn}/webhook/discord"
  }
}

output "set_secrets" {
  description = "One command per secret molten reads from Key Vault: each reads the value from the terminal (not echoed, not in the shell history) and stores it."
  value = [
    for name in local.operator_secrets :
    "read -rsp '${name}: ' v && printf %s \"$v\" | az keyvault secret set --vault-name ${azurerm_key_vault.molten.name} --name ${name} --file /dev/stdin --encoding utf-8 >/dev/null"
  ]
}

output "register_telegram" {
  description = "Registers the Telegram webhook with the secret token molten checks (after telegram-bot-token and telegram-webhook-secret are set)."
  value       = "curl -s \"https://api.telegram.org/bot$(az keyvault secret show --vault-name ${azurerm_key_vault.molten.name} --name telegram-bot-token --query value -o tsv)/setWebhook\" -d url=https://${azurerm_container_app.ingress.ingress[0].fqdn}/webhook/telegram -d secret_token=\"$(az keyvault secret show --vault-name ${azurerm_key_vault.molten.name} --name telegram-webhook-secret --query value -o tsv)\""
}

output "key_vault_name" {
  description = "The Key Vault holding molten's secrets."
  value       = azurerm_key_vault.molten.name
}

output "storage_account_name" {
  description = "The storage account of the queue, the state and the plugins container."
  value       = azurerm_storage_account.molten.name
}

output "plugins_container" {
  description = "Where `molten skill install --store azure` (or az storage blob upload) puts plugins."
  value       = local.plugin_container
}

output "application_insights_connection_string" {
  description = "For an OpenTelemetry Collector that exports molten's traces to Application Insights."
  value       = azurerm_application_insights.molten.connection_string
  sensitive   = true
}

output "openclaw_internal_url" {
  description = "The OpenClaw gateway's address inside the environment (when enable_openclaw)."
  value       = var.enable_openclaw ? "ws://${azurerm_container_app.openclaw[0].name}" : null
}
