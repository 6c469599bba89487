# Planted mistake: a variable without a description (tflint's
# terraform_documented_variables).
terraform {
  required_version = ">= 1.11.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }
}

variable "queue_name" {
  type = string
}

resource "aws_sqs_queue" "this" {
  name = var.queue_name
}
