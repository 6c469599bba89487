output "role_arns" {
  description = "IRSA role ARN per function (retain, report), to annotate on the ServiceAccounts gamemetrics-retain and gamemetrics-report."
  value       = { for name, role in aws_iam_role.this : name => role.arn }
}
