# Planted mistake: the committed lock file pins another provider version.
terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }
}

resource "aws_sqs_queue" "this" {
  name = "gamemetrics-dev"
}
