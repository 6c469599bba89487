# The whole GameMetrics platform of one environment. terraform/environments/*
# call this module with their values only, so the environments cannot drift
# apart in anything but those values.

data "aws_caller_identity" "current" {}

locals {
  name = "gamemetrics-${var.environment}"

  tags = merge(var.tags, {
    Project     = "gamemetrics"
    Environment = var.environment
    ManagedBy   = "terraform"
  })

  # Kafka runs in the cluster under Strimzi (knative/platform/kafka); these
  # are its clients. Each gets a KafkaUser with its own ACLs.
  kafka_users = ["ingest", "process", "notify", "recommend", "operator"]
}

module "vpc" {
  source = "../vpc"

  name                 = local.name
  cidr                 = var.vpc_cidr
  azs                  = var.azs
  private_subnet_cidrs = var.private_subnet_cidrs
  public_subnet_cidrs  = var.public_subnet_cidrs
  single_nat_gateway   = var.single_nat_gateway
  cluster_name         = local.name
  tags                 = local.tags
}

module "eks" {
  source = "../eks"

  cluster_name           = local.name
  kubernetes_version     = var.kubernetes_version
  subnet_ids             = module.vpc.private_subnet_ids
  endpoint_public_access = length(var.eks_public_access_cidrs) > 0
  public_access_cidrs    = var.eks_public_access_cidrs
  node_instance_types    = var.system_node_instance_types
  node_min_size          = var.system_node_min_size
  node_max_size          = var.system_node_max_size
  node_desired_size      = var.system_node_min_size
  tags                   = local.tags
}

module "karpenter" {
  source = "../karpenter"

  cluster_name              = module.eks.cluster_name
  cluster_security_group_id = module.eks.cluster_security_group_id
  oidc_provider_arn         = module.eks.oidc_provider_arn
  oidc_provider_url         = module.eks.oidc_provider_url
  tags                      = local.tags
}

module "ecr" {
  source = "../ecr"

  name         = local.name
  force_delete = var.force_destroy
  tags         = local.tags
}

module "rds" {
  source = "../rds"

  identifier                 = local.name
  instance_class             = var.rds_instance_class
  multi_az                   = var.rds_multi_az
  deletion_protection        = var.deletion_protection
  backup_retention_period    = var.rds_backup_retention_period
  vpc_id                     = module.vpc.vpc_id
  subnet_ids                 = module.vpc.private_subnet_ids
  allowed_security_group_ids = [module.eks.cluster_security_group_id]
  tags                       = local.tags
}

module "elasticache" {
  source = "../elasticache"

  name                       = local.name
  node_type                  = var.redis_node_type
  num_cache_clusters         = var.redis_num_cache_clusters
  vpc_id                     = module.vpc.vpc_id
  subnet_ids                 = module.vpc.private_subnet_ids
  allowed_security_group_ids = [module.eks.cluster_security_group_id]
  tags                       = local.tags
}

module "kafka_users" {
  source = "../kafka-users"

  name        = local.name
  users       = local.kafka_users
  kms_key_arn = module.eks.secrets_kms_key_arn
  tags        = local.tags
}

module "s3" {
  source = "../s3"

  # S3_BUCKET in knative/overlays/<env> is the same expression.
  bucket_name   = "${local.name}-archive-${data.aws_caller_identity.current.account_id}"
  force_destroy = var.force_destroy
  tags          = local.tags
}

module "dns" {
  source = "../dns"

  zone_name = var.zone_name
  domain    = var.domain
  tags      = local.tags
}

module "iam" {
  source = "../iam"

  name_prefix       = local.name
  oidc_provider_arn = module.eks.oidc_provider_arn
  oidc_provider_url = module.eks.oidc_provider_url
  bucket_arn        = module.s3.bucket_arn
  kms_key_arn       = module.s3.kms_key_arn
  hosted_zone_arn   = module.dns.hosted_zone_arn
  secret_arns = concat(
    [module.rds.app_secret_arn, module.rds.master_user_secret_arn, module.elasticache.url_secret_arn],
    values(module.kafka_users.secret_arns),
  )
  secret_kms_key_arns = [module.rds.kms_key_arn, module.elasticache.kms_key_arn, module.eks.secrets_kms_key_arn]
  tags                = local.tags
}
