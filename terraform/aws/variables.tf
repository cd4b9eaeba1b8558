# Inputs of the failover coordinator module for one AWS region (ECS Fargate).
# No variable holds a secret: secrets stay in SSM Parameter Store or Secrets Manager and reach
# the container as environment variables (see `secrets`).

variable "name" {
  description = "Name of the service, prefix of every resource name. Make it unique per region and account."
  type        = string
  default     = "failover"

  validation {
    condition     = can(regex("^[a-zA-Z][a-zA-Z0-9-]{0,30}$", var.name))
    error_message = "name: letters, digits and '-', starting with a letter, at most 31 characters."
  }
}

variable "image" {
  description = "Container image built from the repository's Dockerfile, e.g. 123456789012.dkr.ecr.us-east-1.amazonaws.com/failover:0.1.0."
  type        = string
}

variable "observer" {
  description = "The policy region this coordinator runs as (sets FAILOVER_OBSERVER; one of the policy's regions[].name)."
  type        = string
}

variable "policy_yaml" {
  description = "The policy file's content (no secrets: it only names environment variables). Written to $FAILOVER_POLICY when the task starts."
  type        = string
}

variable "secrets" {
  description = "Environment variable name => ARN of an SSM parameter or a Secrets Manager secret (optionally with a ':json-key::' suffix), e.g. { FAILOVER_API_TOKEN = \"arn:aws:ssm:us-east-1:123456789012:parameter/failover/api-token\" }. ECS injects the values at start; they never pass through Terraform."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.secrets : can(regex("^[A-Za-z_][A-Za-z0-9_]*$", k)) && can(regex("^arn:[^:]+:(ssm|secretsmanager):", v))])
    error_message = "secrets: keys are environment variable names, values are full SSM parameter or Secrets Manager ARNs."
  }
}

variable "secrets_kms_key_arns" {
  description = "Customer managed KMS keys that encrypt the secrets (the execution role gets kms:Decrypt on them). Leave empty for AWS managed keys."
  type        = list(string)
  default     = []
}

variable "environment" {
  description = "Extra plain (non-secret) environment variables for the container, e.g. { FAILOVER_LOG_FORMAT = \"json\" }."
  type        = map(string)
  default     = {}
}

variable "command" {
  description = "The failover subcommand and its options that the task runs."
  type        = list(string)
  default     = ["run"]
}

variable "cluster_arn" {
  description = "Existing ECS cluster to run in; null creates one named after `name`."
  type        = string
  default     = null
}

variable "vpc_id" {
  description = "VPC of the task's security group."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets of the task. They need a route to the gateways it probes and to the AWS APIs (NAT gateway or VPC endpoints), or use assign_public_ip."
  type        = list(string)
}

variable "assign_public_ip" {
  description = "Give the task a public IP (public subnets without NAT)."
  type        = bool
  default     = false
}

variable "proxy_port" {
  description = "Port of the embedded proxy (the policy's proxy.listen)."
  type        = number
  default     = 8443
}

variable "api_port" {
  description = "Port of the admin API (the policy's api.listen; bind it to 0.0.0.0 there to reach it from outside the task)."
  type        = number
  default     = 8877
}

variable "proxy_ingress_cidrs" {
  description = "CIDR blocks (IPv4 or IPv6) allowed to reach the proxy port."
  type        = list(string)
  default     = []
}

variable "api_ingress_cidrs" {
  description = "CIDR blocks (IPv4 or IPv6) allowed to reach the admin API port. Keep it to the operators' networks."
  type        = list(string)
  default     = []
}

variable "proxy_target_group_arns" {
  description = "Target groups (target type ip, TCP, e.g. of a Network Load Balancer) that should send traffic to the proxy port."
  type        = list(string)
  default     = []
}

variable "cpu" {
  description = "Fargate task CPU units."
  type        = number
  default     = 256
}

variable "memory" {
  description = "Fargate task memory (MiB)."
  type        = number
  default     = 512
}

variable "cpu_architecture" {
  description = "X86_64 or ARM64: the image must be built for it."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture: X86_64 or ARM64."
  }
}

variable "stop_timeout" {
  description = "Seconds between SIGTERM and SIGKILL; longer than the policy's proxy.drain_time so connections drain."
  type        = number
  default     = 40
}

variable "log_retention_days" {
  description = "Retention of the CloudWatch log group. On Fargate the sqlite store restarts empty with each task, so these logs are the lasting record of every decision: keep them a year."
  type        = number
  default     = 365
}

variable "log_kms_key_arn" {
  description = "Customer managed KMS key for the log group (its key policy must allow logs.<region>.amazonaws.com); null: CloudWatch's own encryption at rest."
  type        = string
  default     = null
}

variable "route53_zone_id" {
  description = "Hosted zone of the policy's route53 traffic blocks; null grants no Route 53 access."
  type        = string
  default     = null
}

variable "domains" {
  description = "Domains whose records the coordinator changes in route53_zone_id (the IAM policy allows only these names and their _failover.<domain> markers). type and values are the record created when create_records is true; after that failover owns the values."
  type = map(object({
    type   = optional(string, "A")
    values = optional(list(string), [])
  }))
  default = {}

  validation {
    condition     = alltrue([for d in values(var.domains) : contains(["A", "AAAA", "CNAME"], d.type)])
    error_message = "domains: type is A, AAAA or CNAME."
  }
}

variable "create_records" {
  description = "Create each domain's record and its _failover.<domain> TXT marker. Route 53 is global: set it in exactly one of the module calls (one region)."
  type        = bool
  default     = false
}

variable "record_ttl" {
  description = "TTL of the records created at first apply (failover then publishes each domain's ttl from the policy)."
  type        = number
  default     = 30
}

variable "initial_primary" {
  description = "Region named in the initial marker (epoch 0); null: observer."
  type        = string
  default     = null
}

variable "eip_allocation_ids" {
  description = "Elastic IPs (eipalloc-...) of the policy's eip traffic blocks that this coordinator may move."
  type        = list(string)
  default     = []
}

variable "grant_validate_reads" {
  description = "Also grant the read-only calls that only `failover validate` makes: route53:GetHostedZone, ec2:DescribeInstances, ec2:DescribeNetworkInterfaces."
  type        = bool
  default     = true
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
