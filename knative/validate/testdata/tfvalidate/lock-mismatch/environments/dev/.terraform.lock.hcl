# This file is maintained automatically by "terraform init".
# Manual edits may be lost in future updates.

provider "registry.terraform.io/hashicorp/aws" {
  version     = "5.99.0"
  constraints = "~> 5.99"
  hashes = [
    "h1:0000000000000000000000000000000000000000000=",
  ]
}
