# Planted mistake: production runs PostgreSQL in a single zone.
module "platform" {
  source = "../../modules/platform"

  environment        = "production"
  kubernetes_version = "1.34"
  multi_az           = false
}
