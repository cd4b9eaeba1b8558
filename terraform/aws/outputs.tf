output "service_name" {
  description = "The ECS service running the coordinator."
  value       = aws_ecs_service.this.name
}

output "cluster_arn" {
  description = "The ECS cluster it runs in."
  value       = local.cluster_arn
}

output "task_definition_arn" {
  description = "The current task definition."
  value       = aws_ecs_task_definition.this.arn
}

output "task_role_arn" {
  description = "The role the coordinator acts as (Route 53, Elastic IPs)."
  value       = aws_iam_role.task.arn
}

output "task_role_name" {
  description = "Name of the task role, to attach more policies (e.g. for an etcd endpoint's network access)."
  value       = aws_iam_role.task.name
}

output "execution_role_arn" {
  description = "The role ECS uses to pull the image, write logs and read the secrets."
  value       = aws_iam_role.execution.arn
}

output "security_group_id" {
  description = "The task's security group."
  value       = aws_security_group.this.id
}

output "log_group_name" {
  description = "CloudWatch log group of the coordinator."
  value       = aws_cloudwatch_log_group.this.name
}

output "records" {
  description = "The records created by this call (empty unless create_records): domain => record FQDN."
  value       = { for d, r in aws_route53_record.domain : d => r.fqdn }
}

output "markers" {
  description = "The ownership markers created by this call: domain => _failover.<domain> FQDN."
  value       = { for d, r in aws_route53_record.marker : d => r.fqdn }
}
