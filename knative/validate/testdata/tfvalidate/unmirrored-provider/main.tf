# Planted mistake: a provider the offline mirror does not have.
terraform {
  required_providers {
    random = {
      source  = "hashicorp/random"
      version = "~> 3.6"
    }
  }
}

resource "random_password" "this" {
  length = 32
}
