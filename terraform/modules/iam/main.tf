# IAM roles for service accounts (IRSA).
#
# Every function gets its own role, trusted only by its ServiceAccount
# (knative/base/serviceaccounts.yaml), so adding an AWS permission to one
# function is a one-line change here and never widens another's:
#   ingest, process, recommend  no AWS permissions
#   notify                      sns:Publish to the <name_prefix>-* topics
#   retain                      raw/*      read, write, delete (archives and prunes raw events)
#   report                      reports/*  read, write
# Cluster components get theirs too:
#   external-secrets            read the GameMetrics secrets (Secrets Manager)
#   external-dns                the records of the environment's zone
locals {
  functions = {
    ingest    = { s3_prefix = null, object_actions = [], sns = false }
    process   = { s3_prefix = null, object_actions = [], sns = false }
    recommend = { s3_prefix = null, object_actions = [], sns = false }
    notify    = { s3_prefix = null, object_actions = [], sns = true }
    retain    = { s3_prefix = "raw/", object_actions = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"], sns = false }
    report    = { s3_prefix = "reports/", object_actions = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"], sns = false }
  }

  s3_functions = { for name, f in local.functions : name => f if f.s3_prefix != null }

  # Role name suffix => the namespace/ServiceAccount that may assume it.
  subjects = merge(
    { for name, _ in local.functions : name => "${var.namespace}:gamemetrics-${name}" },
    {
      external-secrets = "external-secrets:external-secrets"
      external-dns     = "external-dns:external-dns"
    },
  )
}

data "aws_caller_identity" "current" {}

data "aws_region" "current" {}

data "aws_iam_policy_document" "assume" {
  for_each = local.subjects

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
      values   = ["system:serviceaccount:${each.value}"]
    }

    condition {
      test     = "StringEquals"
      variable = "${var.oidc_provider_url}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  for_each = local.subjects

  name               = "${var.name_prefix}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.assume[each.key].json

  tags = merge(var.tags, { "gamemetrics/service-account" = each.value })
}

data "aws_iam_policy_document" "s3" {
  for_each = local.s3_functions

  statement {
    sid       = "Objects"
    effect    = "Allow"
    actions   = each.value.object_actions
    resources = ["${var.bucket_arn}/${each.value.s3_prefix}*"]
  }

  statement {
    sid       = "ListPrefix"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = [each.value.s3_prefix, "${each.value.s3_prefix}*"]
    }
  }

  statement {
    sid       = "BucketKey"
    effect    = "Allow"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "s3" {
  for_each = local.s3_functions

  name   = "archive-${trimsuffix(each.value.s3_prefix, "/")}"
  role   = aws_iam_role.this[each.key].id
  policy = data.aws_iam_policy_document.s3[each.key].json
}

data "aws_iam_policy_document" "sns" {
  statement {
    sid       = "PublishNotifications"
    effect    = "Allow"
    actions   = ["sns:Publish"]
    resources = ["arn:aws:sns:${data.aws_region.current.name}:${data.aws_caller_identity.current.account_id}:${var.name_prefix}-*"]
  }
}

resource "aws_iam_role_policy" "sns" {
  for_each = { for name, f in local.functions : name => f if f.sns }

  name   = "sns-publish"
  role   = aws_iam_role.this[each.key].id
  policy = data.aws_iam_policy_document.sns.json
}

data "aws_iam_policy_document" "external_secrets" {
  statement {
    sid       = "ReadGameMetricsSecrets"
    effect    = "Allow"
    actions   = ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"]
    resources = var.secret_arns
  }

  statement {
    sid       = "DecryptGameMetricsSecrets"
    effect    = "Allow"
    actions   = ["kms:Decrypt"]
    resources = var.secret_kms_key_arns
  }
}

resource "aws_iam_role_policy" "external_secrets" {
  name   = "read-secrets"
  role   = aws_iam_role.this["external-secrets"].id
  policy = data.aws_iam_policy_document.external_secrets.json
}

data "aws_iam_policy_document" "external_dns" {
  statement {
    sid       = "Records"
    effect    = "Allow"
    actions   = ["route53:ChangeResourceRecordSets", "route53:ListResourceRecordSets", "route53:ListTagsForResources"]
    resources = [var.hosted_zone_arn]
  }

  statement {
    sid       = "Zones"
    effect    = "Allow"
    actions   = ["route53:ListHostedZones"]
    resources = ["*"]
  }
}

resource "aws_iam_role_policy" "external_dns" {
  name   = "route53-records"
  role   = aws_iam_role.this["external-dns"].id
  policy = data.aws_iam_policy_document.external_dns.json
}
