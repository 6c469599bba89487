output "controller_role_arn" {
  description = "IRSA role of the Karpenter controller (ServiceAccount kube-system/karpenter)."
  value       = aws_iam_role.controller.arn
}

output "node_role_name" {
  description = "IAM role of the nodes Karpenter starts (EC2NodeClass spec.role)."
  value       = aws_iam_role.node.name
}

output "interruption_queue_name" {
  description = "SQS queue of interruption events (Karpenter settings.interruptionQueue)."
  value       = aws_sqs_queue.interruption.name
}
