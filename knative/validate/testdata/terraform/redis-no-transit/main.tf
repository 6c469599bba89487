# Planted mistake: Redis without TLS.
resource "random_password" "auth" {
  length  = 64
  special = false
}

resource "aws_elasticache_replication_group" "this" {
  replication_group_id       = "gamemetrics"
  description                = "cache"
  engine                     = "redis"
  node_type                  = "cache.t4g.small"
  num_cache_clusters         = 2
  transit_encryption_enabled = false
  at_rest_encryption_enabled = true
  auth_token                 = random_password.auth.result
}
