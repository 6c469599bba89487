# Planted mistake: a reference to a variable that is not declared.
terraform {
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.100"
    }
  }
}

resource "aws_sqs_queue" "this" {
  name = var.queue_name
}
