terraform {
  required_version = ">= 1.5.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.90"
    }
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
    tls = {
      source  = "hashicorp/tls"
      version = "~> 4.0"
    }
    http = {
      source  = "hashicorp/http"
      version = "~> 3.4"
    }
    kubectl = {
      source  = "alekc/kubectl"
      version = "~> 2.1"
    }
  }

  # Partial configuration: terraform init -backend-config=backend.hcl
  # (bucket, key, region, dynamodb_table or use_lockfile, encrypt = true).
  # The state holds generated secrets (MSK and Redis passwords): the backend
  # bucket must be encrypted and access-restricted.
  backend "s3" {}
}
