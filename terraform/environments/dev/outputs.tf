# Everything knative/deploy.sh and the runbook read (terraform output -raw NAME).
output "aws_account_id" {
  description = "AWS account ID."
  value       = module.platform.aws_account_id
}

output "cluster_name" {
  description = "EKS cluster name."
  value       = module.platform.cluster_name
}

output "image_repository" {
  description = "ECR repository of the function bundle (IMAGE of make deploy, without tag)."
  value       = module.platform.repository_urls["gamemetrics"]
}

output "cli_image_repository" {
  description = "ECR repository of the operator CLI (CLI_IMAGE of make deploy, without tag)."
  value       = module.platform.repository_urls["gamemetrics-cli"]
}

output "domain" {
  description = "Domain of ingest and report."
  value       = module.platform.domain
}

output "certificate_arn" {
  description = "ACM certificate of the load balancer."
  value       = module.platform.certificate_arn
}

output "hosted_zone_id" {
  description = "Route 53 zone ExternalDNS writes to."
  value       = module.platform.hosted_zone_id
}

output "karpenter_node_role" {
  description = "IAM role of Karpenter's nodes."
  value       = module.platform.karpenter_node_role
}

output "karpenter_interruption_queue" {
  description = "Karpenter's interruption queue."
  value       = module.platform.karpenter_interruption_queue
}

output "rds_address" {
  description = "PostgreSQL host name."
  value       = module.platform.rds_address
}

output "rds_master_user_secret_arn" {
  description = "RDS-managed master secret (migration Job's db-roles step only)."
  value       = module.platform.rds_master_user_secret_arn
}

output "archive_bucket" {
  description = "Archive bucket."
  value       = module.platform.archive_bucket
}
