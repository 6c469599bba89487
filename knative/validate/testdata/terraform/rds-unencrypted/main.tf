# Planted mistake: storage not encrypted.
resource "aws_db_instance" "this" {
  identifier                  = "gamemetrics"
  engine                      = "postgres"
  engine_version              = "15"
  instance_class              = "db.t4g.medium"
  allocated_storage           = 20
  storage_encrypted           = false
  username                    = "gamemetrics"
  manage_master_user_password = true
  multi_az                    = var.multi_az
  publicly_accessible         = false
}
