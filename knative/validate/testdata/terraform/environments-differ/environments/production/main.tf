module "store" {
  source = "../../modules/store"

  bucket_name = "gamemetrics-production-archive"
  multi_az    = true
}

module "cache" {
  source = "../../modules/store"

  bucket_name = "gamemetrics-production-cache"
  multi_az    = true
}
