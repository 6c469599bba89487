resource "aws_db_instance" "this" {
  identifier                  = "gamemetrics"
  engine                      = "postgres"
  engine_version              = "15"
  instance_class              = "db.t4g.medium"
  allocated_storage           = 20
  storage_encrypted           = true
  username                    = "gamemetrics"
  manage_master_user_password = true
  multi_az                    = var.multi_az
  publicly_accessible         = false
}

resource "aws_elasticache_replication_group" "this" {
  replication_group_id       = "gamemetrics"
  description                = "cache"
  engine                     = "redis"
  node_type                  = "cache.t4g.small"
  num_cache_clusters         = 2
  transit_encryption_enabled = true
  at_rest_encryption_enabled = true
  auth_token                 = data.aws_secretsmanager_secret_version.auth.secret_string
}

data "aws_secretsmanager_secret_version" "auth" {
  secret_id = "gamemetrics/redis/auth"
}
