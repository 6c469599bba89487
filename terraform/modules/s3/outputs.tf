output "bucket_id" {
  description = "Name of the archive bucket (S3_BUCKET)."
  value       = aws_s3_bucket.this.id
}

output "bucket_arn" {
  description = "ARN of the archive bucket."
  value       = aws_s3_bucket.this.arn
}

output "kms_key_arn" {
  description = "ARN of the KMS key encrypting the bucket; IRSA roles need kms:Decrypt/GenerateDataKey on it."
  value       = aws_kms_key.this.arn
}
