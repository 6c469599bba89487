# Planted mistake: staging does not instantiate module "cache" like the other environments.
module "store" {
  source = "../../modules/store"

  bucket_name = "gamemetrics-staging-archive"
  multi_az    = false
}
