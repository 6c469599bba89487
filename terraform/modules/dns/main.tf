# Public names and TLS for the two public functions. Knative names them
# <service>.<domain> (config-network domain-template, knative/platform/knative),
# so ingest.<domain> and report.<domain> are covered by one wildcard
# certificate. TLS ends at the network load balancer in front of Kourier,
# which presents this certificate (knative/platform/knative/kourier-service.yaml);
# ExternalDNS points *.<domain> at that load balancer.
#
# Prerequisite: a public Route 53 hosted zone for zone_name that the domain
# lies in (the parent domain delegated to it).
data "aws_route53_zone" "this" {
  name         = var.zone_name
  private_zone = false
}

resource "aws_acm_certificate" "this" {
  domain_name               = "*.${var.domain}"
  subject_alternative_names = [var.domain]
  validation_method         = "DNS"

  lifecycle {
    create_before_destroy = true
  }

  tags = var.tags
}

resource "aws_route53_record" "validation" {
  for_each = {
    for o in aws_acm_certificate.this.domain_validation_options : o.domain_name => o
  }

  zone_id         = data.aws_route53_zone.this.zone_id
  name            = each.value.resource_record_name
  type            = each.value.resource_record_type
  records         = [each.value.resource_record_value]
  ttl             = 300
  allow_overwrite = true
}

resource "aws_acm_certificate_validation" "this" {
  certificate_arn         = aws_acm_certificate.this.arn
  validation_record_fqdns = [for r in aws_route53_record.validation : r.fqdn]
}
