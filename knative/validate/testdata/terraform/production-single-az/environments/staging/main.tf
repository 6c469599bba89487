module "store" {
  source = "../../modules/store"

  bucket_name = "gamemetrics-staging-archive"
  multi_az    = false
}

module "cache" {
  source = "../../modules/store"

  bucket_name = "gamemetrics-staging-cache"
}
