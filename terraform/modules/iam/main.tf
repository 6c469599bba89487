# One IRSA role per function that touches S3, scoped to its prefix:
#   retain  raw/*      read, write, delete (archives and prunes raw events)
#   report  reports/*  read, write
# Nothing else in GameMetrics gets AWS credentials.
locals {
  functions = {
    retain = {
      service_account = "gamemetrics-retain"
      prefix          = "raw/"
      object_actions  = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    }
    report = {
      service_account = "gamemetrics-report"
      prefix          = "reports/"
      object_actions  = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
    }
  }
}

data "aws_iam_policy_document" "assume" {
  for_each = local.functions

  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${var.oidc_provider_url}:sub"
      values   = ["system:serviceaccount:${var.namespace}:${each.value.service_account}"]
    }

    condition {
      test     = "StringEquals"
      variable = "${var.oidc_provider_url}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "s3" {
  for_each = local.functions

  statement {
    sid       = "Objects"
    effect    = "Allow"
    actions   = each.value.object_actions
    resources = ["${var.bucket_arn}/${each.value.prefix}*"]
  }

  statement {
    sid       = "ListPrefix"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [each.value.prefix, "${each.value.prefix}*"]
    }
  }

  statement {
    sid       = "BucketKey"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role" "this" {
  for_each = local.functions

  name               = "${var.name_prefix}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.assume[each.key].json

  tags = merge(var.tags, { "gamemetrics/function" = each.key })
}

resource "aws_iam_role_policy" "s3" {
  for_each = local.functions

  name   = "archive-${trimsuffix(each.value.prefix, "/")}"
  role   = aws_iam_role.this[each.key].id
  policy = data.aws_iam_policy_document.s3[each.key].json
}
