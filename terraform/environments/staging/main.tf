# The staging environment: the values of terraform/modules/platform, nothing else.
module "platform" {
  source = "../../modules/platform"

  environment             = "staging"
  kubernetes_version      = "1.34"
  eks_public_access_cidrs = var.eks_public_access_cidrs
  zone_name               = var.zone_name
  domain                  = var.domain
  vpc_cidr                = "10.20.0.0/16"
  azs                     = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
  private_subnet_cidrs    = ["10.20.0.0/19", "10.20.32.0/19", "10.20.64.0/19"]
  public_subnet_cidrs     = ["10.20.128.0/22", "10.20.132.0/22", "10.20.136.0/22"]
  single_nat_gateway      = true

  rds_instance_class          = "db.r6g.large"
  rds_multi_az                = false
  rds_backup_retention_period = 7
  deletion_protection         = true

  redis_node_type          = "cache.r7g.large"
  redis_num_cache_clusters = 2
}
