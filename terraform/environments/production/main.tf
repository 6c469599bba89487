# The production environment: the values of terraform/modules/platform, nothing else.
module "platform" {
  source = "../../modules/platform"

  environment             = "production"
  kubernetes_version      = "1.34"
  eks_public_access_cidrs = var.eks_public_access_cidrs
  zone_name               = var.zone_name
  domain                  = var.domain
  vpc_cidr                = "10.30.0.0/16"
  azs                     = ["eu-west-1a", "eu-west-1b", "eu-west-1c"]
  private_subnet_cidrs    = ["10.30.0.0/19", "10.30.32.0/19", "10.30.64.0/19"]
  public_subnet_cidrs     = ["10.30.128.0/22", "10.30.132.0/22", "10.30.136.0/22"]
  single_nat_gateway      = false

  system_node_instance_types = ["m6i.xlarge"]
  system_node_min_size       = 3
  system_node_max_size       = 4

  rds_instance_class          = "db.r6g.xlarge"
  rds_multi_az                = true
  rds_backup_retention_period = 14
  deletion_protection         = true

  redis_node_type          = "cache.r7g.large"
  redis_num_cache_clusters = 3
}
