terraform {
  required_version = ">= 1.11.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }

  # Partial configuration: terraform init -backend-config=backend.hcl
  # (bucket, key, region, use_lockfile, encrypt = true). The state holds the
  # Redis AUTH token: the backend bucket must be encrypted and restricted.
  backend "s3" {}
}
