module "store" {
  source = "../../modules/store"

  bucket_name = "gamemetrics-dev-archive"
  multi_az    = false
}

module "cache" {
  source = "../../modules/store"

  bucket_name = "gamemetrics-dev-cache"
}
