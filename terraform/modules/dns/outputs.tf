output "domain" {
  description = "Domain of the public functions (DOMAIN in knative/deploy.sh)."
  value       = var.domain
}

output "certificate_arn" {
  description = "ARN of the validated wildcard certificate the load balancer presents (ACM_CERTIFICATE_ARN in knative/deploy.sh)."
  value       = aws_acm_certificate_validation.this.certificate_arn
}

output "hosted_zone_arn" {
  description = "ARN of the hosted zone ExternalDNS writes to."
  value       = data.aws_route53_zone.this.arn
}

output "hosted_zone_id" {
  description = "ID of the hosted zone (ExternalDNS --zone-id-filter)."
  value       = data.aws_route53_zone.this.zone_id
}
