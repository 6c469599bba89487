# Planted mistake: a password literal inside an object (the secret value of a Secrets Manager secret).
resource "aws_secretsmanager_secret_version" "scram" {
  secret_id = "AmazonMSK_gamemetrics"
  secret_string = jsonencode({
    username = "gamemetrics"
    password = "hunter2-but-longer"
  })
}
