# The dev environment: composes the shared modules and sets values only.
# Every environment instantiates the same modules (checked by knative/validate).

data "aws_caller_identity" "current" {}

locals {
  environment = "dev"
  name        = "gamemetrics-${local.environment}"

  tags = {
    Project     = "gamemetrics"
    Environment = local.environment
    ManagedBy   = "terraform"
  }
}

module "vpc" {
  source = "../../modules/vpc"

  name                 = local.name
  cidr                 = var.vpc_cidr
  azs                  = var.azs
  private_subnet_cidrs = var.private_subnet_cidrs
  public_subnet_cidrs  = var.public_subnet_cidrs
  single_nat_gateway   = true
  cluster_name         = local.name
  tags                 = local.tags
}

module "eks" {
  source = "../../modules/eks"

  cluster_name           = local.name
  vpc_id                 = module.vpc.vpc_id
  subnet_ids             = module.vpc.private_subnet_ids
  endpoint_public_access = length(var.eks_public_access_cidrs) > 0
  public_access_cidrs    = var.eks_public_access_cidrs
  node_instance_types    = ["m6i.large"]
  node_min_size          = 2
  node_max_size          = 4
  node_desired_size      = 2
  knative_version        = var.knative_version
  tags                   = local.tags
}

module "msk" {
  source = "../../modules/msk"

  name                       = local.name
  broker_instance_type       = "kafka.t3.small"
  number_of_broker_nodes     = 2
  broker_volume_size         = 50
  default_replication_factor = 2
  min_insync_replicas        = 1
  vpc_id                     = module.vpc.vpc_id
  subnet_ids                 = module.vpc.private_subnet_ids
  client_security_group_ids  = [module.eks.cluster_security_group_id]
  tags                       = local.tags
}

module "rds" {
  source = "../../modules/rds"

  identifier                 = local.name
  instance_class             = "db.t4g.medium"
  multi_az                   = false
  deletion_protection        = false
  backup_retention_period    = 3
  vpc_id                     = module.vpc.vpc_id
  subnet_ids                 = module.vpc.private_subnet_ids
  allowed_security_group_ids = [module.eks.cluster_security_group_id]
  tags                       = local.tags
}

module "elasticache" {
  source = "../../modules/elasticache"

  name                       = local.name
  node_type                  = "cache.t4g.small"
  num_cache_clusters         = 1
  vpc_id                     = module.vpc.vpc_id
  subnet_ids                 = module.vpc.private_subnet_ids
  allowed_security_group_ids = [module.eks.cluster_security_group_id]
  tags                       = local.tags
}

module "s3" {
  source = "../../modules/s3"

  # Must match S3_BUCKET in knative/overlays/dev.
  bucket_name   = "${local.name}-archive-${data.aws_caller_identity.current.account_id}"
  force_destroy = true
  tags          = local.tags
}

module "iam" {
  source = "../../modules/iam"

  name_prefix       = local.name
  oidc_provider_arn = module.eks.oidc_provider_arn
  oidc_provider_url = module.eks.oidc_provider_url
  bucket_arn        = module.s3.bucket_arn
  kms_key_arn       = module.s3.kms_key_arn
  tags              = local.tags
}
