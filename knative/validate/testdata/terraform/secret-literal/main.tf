# Planted mistake: a password written in the code.
resource "aws_db_instance" "this" {
  identifier          = "gamemetrics"
  engine              = "postgres"
  engine_version      = "15"
  instance_class      = "db.t4g.medium"
  allocated_storage   = 20
  storage_encrypted   = true
  username            = "gamemetrics"
  password            = "hunter2-but-longer"
  multi_az            = var.multi_az
  publicly_accessible = false
}
