# The failover coordinator in one AWS region: one ECS Fargate task, its IAM roles and security
# group, and (in one region only) the DNS records it manages.

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.id
  account_id = data.aws_caller_identity.current.account_id

  cluster_arn     = var.cluster_arn != null ? var.cluster_arn : aws_ecs_cluster.this[0].arn
  policy_path     = "/etc/failover/policy.yaml"
  initial_primary = var.initial_primary != null ? var.initial_primary : var.observer

  # The names the task may change, as Route 53 normalizes them for IAM conditions.
  domain_names = [for d in keys(var.domains) : replace(lower(trimsuffix(d, ".")), "*", "\\052")]
  record_names = concat(local.domain_names, [for d in local.domain_names : "_failover.${d}"])

  # A Secrets Manager valueFrom may end in ':json-key:version-stage:version-id'; IAM wants the secret.
  ssm_arns = [for v in values(var.secrets) : v if can(regex("^arn:[^:]+:ssm:", v))]
  secretsmanager_arns = distinct([
    for v in values(var.secrets) : join(":", slice(split(":", v), 0, 7)) if can(regex("^arn:[^:]+:secretsmanager:", v))
  ])

  environment = merge(var.environment, {
    FAILOVER_POLICY      = local.policy_path
    FAILOVER_POLICY_YAML = var.policy_yaml
    FAILOVER_OBSERVER    = var.observer
  })

  healthcheck = "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${var.api_port}/healthz', timeout=4)"
}

# -- logs and cluster --------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_158:CloudWatch Logs encrypts every log group at rest; a customer managed key is optional (log_kms_key_arn) and failover never logs a secret value
  name              = "/ecs/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.log_kms_key_arn
  tags              = var.tags
}

resource "aws_ecs_cluster" "this" {
  count = var.cluster_arn == null ? 1 : 0
  name  = var.name
  tags  = var.tags
}

# -- execution role: pulls the image, writes logs, reads the secrets at start ----------------

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "execution" {
  name_prefix        = "${var.name}-exec-"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "secrets" {
  count = length(var.secrets) > 0 ? 1 : 0

  dynamic "statement" {
    for_each = length(local.ssm_arns) > 0 ? [1] : []

    content {
      sid       = "ReadParameters"
      actions   = ["ssm:GetParameters"]
      resources = local.ssm_arns
    }
  }

  dynamic "statement" {
    for_each = length(local.secretsmanager_arns) > 0 ? [1] : []

    content {
      sid       = "ReadSecrets"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = local.secretsmanager_arns
    }
  }

  dynamic "statement" {
    for_each = length(var.secrets_kms_key_arns) > 0 ? [1] : []

    content {
      sid       = "DecryptSecrets"
      actions   = ["kms:Decrypt"]
      resources = var.secrets_kms_key_arns
    }
  }
}

resource "aws_iam_role_policy" "secrets" {
  count  = length(var.secrets) > 0 ? 1 : 0
  name   = "read-secrets"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.secrets[0].json
}

# -- task role: what the coordinator itself may do (Route 53 records, Elastic IPs) -------------

resource "aws_iam_role" "task" {
  name_prefix        = "${var.name}-task-"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = var.tags
}

data "aws_iam_policy_document" "task" {
  count = var.route53_zone_id != null || length(var.eip_allocation_ids) > 0 ? 1 : 0

  # Route 53: read the zone's records, change only the managed names and their markers with the
  # CREATE/DELETE pairs the adapter sends (never UPSERT), and wait for INSYNC.
  dynamic "statement" {
    for_each = var.route53_zone_id != null ? [1] : []

    content {
      sid       = "ReadRecords"
      actions   = ["route53:ListResourceRecordSets"]
      resources = ["arn:${local.partition}:route53:::hostedzone/${var.route53_zone_id}"]
    }
  }

  dynamic "statement" {
    for_each = var.route53_zone_id != null ? [1] : []

    content {
      sid       = "ChangeManagedRecords"
      actions   = ["route53:ChangeResourceRecordSets"]
      resources = ["arn:${local.partition}:route53:::hostedzone/${var.route53_zone_id}"]

      condition {
        test     = "ForAllValues:StringEquals"
        variable = "route53:ChangeResourceRecordSetsNormalizedRecordNames"
        values   = local.record_names
      }

      condition {
        test     = "ForAllValues:StringEquals"
        variable = "route53:ChangeResourceRecordSetsRecordTypes"
        values   = ["A", "AAAA", "CNAME", "TXT"]
      }

      condition {
        test     = "ForAllValues:StringEquals"
        variable = "route53:ChangeResourceRecordSetsActions"
        values   = ["CREATE", "DELETE"]
      }
    }
  }

  dynamic "statement" {
    for_each = var.route53_zone_id != null ? [1] : []

    content {
      sid       = "WaitForChanges"
      actions   = ["route53:GetChange"]
      resources = ["arn:${local.partition}:route53:::change/*"]
    }
  }

  dynamic "statement" {
    for_each = var.route53_zone_id != null && var.grant_validate_reads ? [1] : []

    content {
      sid       = "ValidateZone"
      actions   = ["route53:GetHostedZone"]
      resources = ["arn:${local.partition}:route53:::hostedzone/${var.route53_zone_id}"]
    }
  }

  # Elastic IPs: describe (no resource-level permissions exist for it), move only the listed
  # addresses, onto instances or network interfaces of this account.
  dynamic "statement" {
    for_each = length(var.eip_allocation_ids) > 0 ? [1] : []

    content {
      sid       = "DescribeAddresses"
      actions   = ["ec2:DescribeAddresses"]
      resources = ["*"]
    }
  }

  dynamic "statement" {
    for_each = length(var.eip_allocation_ids) > 0 ? [1] : []

    content {
      sid     = "MoveAddresses"
      actions = ["ec2:AssociateAddress", "ec2:DisassociateAddress"]
      resources = concat(
        [for id in var.eip_allocation_ids : "arn:${local.partition}:ec2:*:${local.account_id}:elastic-ip/${id}"],
        [
          "arn:${local.partition}:ec2:*:${local.account_id}:instance/*",
          "arn:${local.partition}:ec2:*:${local.account_id}:network-interface/*",
        ],
      )
    }
  }

  dynamic "statement" {
    for_each = length(var.eip_allocation_ids) > 0 && var.grant_validate_reads ? [1] : []

    content {
      sid       = "ValidateTargets"
      actions   = ["ec2:DescribeInstances", "ec2:DescribeNetworkInterfaces"]
      resources = ["*"]
    }
  }
}

resource "aws_iam_role_policy" "task" {
  count  = var.route53_zone_id != null || length(var.eip_allocation_ids) > 0 ? 1 : 0
  name   = "failover-traffic"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task[0].json

  lifecycle {
    precondition {
      condition     = var.route53_zone_id == null || length(var.domains) > 0
      error_message = "route53_zone_id is set but domains is empty: list the domains failover manages in that zone."
    }
  }
}

# -- network --------------------------------------------------------------------------------------

resource "aws_security_group" "this" {
  name_prefix = "${var.name}-"
  description = "failover coordinator: proxy and admin API in, everything out (probes, provider APIs, alerts)"
  vpc_id      = var.vpc_id
  tags        = var.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_egress_rule" "ipv4" {
  security_group_id = aws_security_group.this.id
  description       = "probes, provider APIs, alerts"
  ip_protocol       = "-1"
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "ipv6" {
  security_group_id = aws_security_group.this.id
  description       = "probes, provider APIs, alerts"
  ip_protocol       = "-1"
  cidr_ipv6         = "::/0"
}

resource "aws_vpc_security_group_ingress_rule" "proxy" {
  for_each = toset(var.proxy_ingress_cidrs)

  security_group_id = aws_security_group.this.id
  description       = "embedded proxy"
  ip_protocol       = "tcp"
  from_port         = var.proxy_port
  to_port           = var.proxy_port
  cidr_ipv4         = strcontains(each.value, ":") ? null : each.value
  cidr_ipv6         = strcontains(each.value, ":") ? each.value : null
}

resource "aws_vpc_security_group_ingress_rule" "api" {
  for_each = toset(var.api_ingress_cidrs)

  security_group_id = aws_security_group.this.id
  description       = "admin API"
  ip_protocol       = "tcp"
  from_port         = var.api_port
  to_port           = var.api_port
  cidr_ipv4         = strcontains(each.value, ":") ? null : each.value
  cidr_ipv6         = strcontains(each.value, ":") ? each.value : null
}

# -- the task and the service ---------------------------------------------------------------------

resource "aws_ecs_task_definition" "this" {
  family                   = var.name
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  tags                     = var.tags

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  container_definitions = jsonencode([
    {
      name      = "failover"
      image     = var.image
      essential = true

      # The policy arrives in the environment (it holds no secrets) and is written to
      # $FAILOVER_POLICY before the daemon starts; secrets come from `secrets` below.
      entryPoint = ["/bin/sh", "-c"]
      command    = ["printf '%s\\n' \"$FAILOVER_POLICY_YAML\" > \"$FAILOVER_POLICY\" && exec failover ${join(" ", var.command)}"]

      environment = [for k in sort(keys(local.environment)) : { name = k, value = local.environment[k] }]
      secrets     = [for k in sort(keys(var.secrets)) : { name = k, valueFrom = var.secrets[k] }]

      portMappings = [
        { containerPort = var.proxy_port, protocol = "tcp" },
        { containerPort = var.api_port, protocol = "tcp" },
      ]

      healthCheck = {
        command     = ["CMD", "python", "-c", local.healthcheck]
        interval    = 30
        timeout     = 5
        retries     = 3
        startPeriod = 60
      }

      ulimits = [
        { name = "nofile", softLimit = 65536, hardLimit = 65536 },
      ]

      stopTimeout = var.stop_timeout

      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.this.name
          awslogs-region        = local.region
          awslogs-stream-prefix = "failover"
        }
      }
    },
  ])
}

resource "aws_ecs_service" "this" {
  name             = var.name
  cluster          = local.cluster_arn
  task_definition  = aws_ecs_task_definition.this.arn
  desired_count    = 1
  launch_type      = "FARGATE"
  platform_version = "LATEST"
  propagate_tags   = "SERVICE"
  tags             = var.tags

  # One coordinator per region: a deployment stops the old task before it starts the new one.
  deployment_minimum_healthy_percent = 0
  deployment_maximum_percent         = 100
  health_check_grace_period_seconds  = length(var.proxy_target_group_arns) > 0 ? 60 : null

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.this.id]
    assign_public_ip = var.assign_public_ip
  }

  dynamic "load_balancer" {
    for_each = toset(var.proxy_target_group_arns)

    content {
      target_group_arn = load_balancer.value
      container_name   = "failover"
      container_port   = var.proxy_port
    }
  }

  depends_on = [aws_iam_role_policy.task, aws_iam_role_policy.secrets]
}

# -- the records failover manages -------------------------------------------------------------
# Created once (in the one module call with create_records = true) so that they exist with a
# known shape; from then on failover owns their values and moves them with fenced changes, so
# Terraform ignores the values and TTLs it finds.

resource "aws_route53_record" "domain" {
  for_each = var.create_records ? var.domains : {}

  zone_id         = var.route53_zone_id
  name            = each.key
  type            = each.value.type
  ttl             = var.record_ttl
  records         = each.value.values
  allow_overwrite = false

  lifecycle {
    ignore_changes = [records, ttl]

    precondition {
      condition     = var.route53_zone_id != null && length(each.value.values) > 0
      error_message = "create_records needs route53_zone_id and, for each domain, the initial values."
    }
  }
}

resource "aws_route53_record" "marker" {
  for_each = var.create_records ? var.domains : {}

  zone_id         = var.route53_zone_id
  name            = "_failover.${trimsuffix(each.key, ".")}"
  type            = "TXT"
  ttl             = var.record_ttl
  records         = ["epoch=0 primary=${local.initial_primary} by=terraform at=0"]
  allow_overwrite = false

  lifecycle {
    ignore_changes = [records, ttl]
  }
}
