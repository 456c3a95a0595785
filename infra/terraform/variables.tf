variable "name" {
  description = "Prefix of every resource name: 3 to 11 lowercase letters and digits, starting with a letter (storage account and Key Vault names derive from it)."
  type        = string
  default     = "molten"
  validation {
    condition     = can(regex("^[a-z][a-z0-9]{2,10}$", var.name))
    error_message = "name must be 3 to 11 lowercase letters and digits, starting with a letter."
  }
}

variable "location" {
  description = "Azure region of everything but the Azure OpenAI account, e.g. westeurope."
  type        = string
  default     = "westeurope"
}

variable "openai_location" {
  description = "Region of the Azure OpenAI account (where the model is offered); defaults to location."
  type        = string
  default     = null
}

variable "image" {
  description = "The molten container image both apps run, e.g. myregistry.azurecr.io/molten:1.0 (built from the repository's Dockerfile)."
  type        = string
  validation {
    condition     = length(var.image) > 0 && !endswith(var.image, ":latest")
    error_message = "image must name a fixed tag or digest, not :latest, so a rollout is a deliberate change."
  }
}

variable "acr_id" {
  description = "Resource id of the Azure Container Registry holding the image (the apps pull with their identities); null for a public registry."
  type        = string
  default     = null
}

variable "openai_model" {
  description = "The model deployed in Azure OpenAI and used by the worker."
  type        = string
  default     = "gpt-4o-mini"
}

variable "openai_model_version" {
  description = "The model version of the deployment."
  type        = string
  default     = "2024-07-18"
}

variable "openai_capacity" {
  description = "Deployment capacity in thousands of tokens per minute (Global Standard)."
  type        = number
  default     = 30
  validation {
    condition     = var.openai_capacity >= 1 && var.openai_capacity <= 1000
    error_message = "openai_capacity must be between 1 and 1000 (thousands of tokens per minute)."
  }
}

variable "ingress_min_replicas" {
  description = "Ingress replicas kept running: 0 scales to zero when idle (the first webhook after a quiet spell waits a cold start of a few seconds, which the platforms' retries absorb); 1 keeps one warm (about 4 USD a month)."
  type        = number
  default     = 0
  validation {
    condition     = var.ingress_min_replicas >= 0 && var.ingress_min_replicas <= 10
    error_message = "ingress_min_replicas must be between 0 and 10."
  }
}

variable "ingress_max_replicas" {
  description = "Most ingress replicas (the HTTP rule adds one per ingress_concurrent_requests requests in flight)."
  type        = number
  default     = 4
  validation {
    condition     = var.ingress_max_replicas >= 1 && var.ingress_max_replicas <= 30
    error_message = "ingress_max_replicas must be between 1 and 30."
  }
}

variable "ingress_concurrent_requests" {
  description = "Requests in flight per ingress replica before another is added."
  type        = number
  default     = 50
}

variable "worker_max_replicas" {
  description = "Most worker replicas (the queue rule adds one per worker_queue_length waiting messages; 0 when the queue is empty)."
  type        = number
  default     = 5
  validation {
    condition     = var.worker_max_replicas >= 1 && var.worker_max_replicas <= 30
    error_message = "worker_max_replicas must be between 1 and 30."
  }
}

variable "worker_queue_length" {
  description = "Waiting messages per worker replica the queue rule aims for."
  type        = number
  default     = 8
  validation {
    condition     = var.worker_queue_length >= 1
    error_message = "worker_queue_length must be at least 1."
  }
}

variable "sandbox_quota_gb" {
  description = "Size of the Azure Files share holding every user's skill sandbox."
  type        = number
  default     = 100
}

variable "otlp_endpoint" {
  description = "OTLP/HTTP collector molten sends traces to (MOLTEN_OTLP_ENDPOINT), e.g. an OpenTelemetry Collector exporting to Application Insights; null for no traces."
  type        = string
  default     = null
}

variable "enable_openclaw" {
  description = "Also run an OpenClaw gateway app, reachable only inside the environment."
  type        = bool
  default     = false
}

variable "openclaw_image" {
  description = "The OpenClaw gateway image (when enable_openclaw)."
  type        = string
  default     = null
}

variable "log_retention_days" {
  description = "Days Log Analytics keeps logs."
  type        = number
  default     = 30
  validation {
    condition     = var.log_retention_days >= 30 && var.log_retention_days <= 730
    error_message = "log_retention_days must be between 30 and 730."
  }
}

variable "tags" {
  description = "Tags on every resource."
  type        = map(string)
  default     = {}
}
