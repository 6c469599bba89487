# The dev environment: the values of terraform/modules/platform, nothing else.
module "platform" {
  source = "../../modules/platform"

  environment             = "dev"
  kubernetes_version      = "1.34"
  eks_public_access_cidrs = var.eks_public_access_cidrs
  zone_name               = var.zone_name
  domain                  = var.domain
  vpc_cidr                = "10.10.0.0/16"
  azs                     = ["eu-west-1a", "eu-west-1b"]
  private_subnet_cidrs    = ["10.10.0.0/19", "10.10.32.0/19"]
  public_subnet_cidrs     = ["10.10.128.0/22", "10.10.132.0/22"]
  single_nat_gateway      = true

  rds_instance_class          = "db.t4g.medium"
  rds_multi_az                = false
  rds_backup_retention_period = 3
  deletion_protection         = false

  redis_node_type          = "cache.t4g.small"
  redis_num_cache_clusters = 1

  force_destroy = true
}
