# The reference tree: every rule holds. The other cases break a copy of it in one place.
module "platform" {
  source = "../../modules/platform"

  environment        = "dev"
  kubernetes_version = "1.34"
  multi_az           = false
}
