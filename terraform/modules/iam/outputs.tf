output "role_arns" {
  description = "IRSA role ARN per function (ingest, process, recommend, notify, retain, report) and cluster component (external-secrets, external-dns)."
  value       = { for name, role in aws_iam_role.this : name => role.arn }
}
