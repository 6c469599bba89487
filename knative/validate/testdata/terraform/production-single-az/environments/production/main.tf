# Planted mistake: production runs PostgreSQL in a single zone.
module "store" {
  source = "../../modules/store"

  bucket_name = "gamemetrics-production-archive"
  multi_az    = false
}

module "cache" {
  source = "../../modules/store"

  bucket_name = "gamemetrics-production-cache"
}
