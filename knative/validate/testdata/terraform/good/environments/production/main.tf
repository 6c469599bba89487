# The reference tree: every rule holds. The other cases break it (or a copy of one file of it) in one place.
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
