output "repository_urls" {
  description = "Repository URL per image (gamemetrics, gamemetrics-cli): IMAGE and CLI_IMAGE of make deploy."
  value       = { for name, r in aws_ecr_repository.this : name => r.repository_url }
}
