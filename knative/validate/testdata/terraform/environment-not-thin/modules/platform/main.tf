module "store" {
  source = "../store"

  bucket_name = "gamemetrics-${var.environment}-archive"
  multi_az    = var.multi_az
}

resource "aws_eks_cluster" "this" {
  name     = "gamemetrics-${var.environment}"
  version  = var.kubernetes_version
  role_arn = "arn:aws:iam::123456789012:role/eks"

  vpc_config {
    subnet_ids = ["subnet-1", "subnet-2"]
  }
}
