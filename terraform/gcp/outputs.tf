output "instance_group_manager" {
  description = "The managed instance group (of one) running the coordinator."
  value       = google_compute_instance_group_manager.this.id
}

output "instance_group" {
  description = "The instance group, e.g. to add it to a load balancer's backend service for the proxy port."
  value       = google_compute_instance_group_manager.this.instance_group
}

output "service_account_email" {
  description = "The coordinator's identity (DNS changes, secrets, logs)."
  value       = google_service_account.this.email
}

output "dns_role" {
  description = "The role the service account holds on the managed zone (null without dns_managed_zone)."
  value       = one(google_dns_managed_zone_iam_member.dns[*].role)
}

output "records" {
  description = "The records created by this call (empty unless create_records): domain => record name."
  value       = { for d, r in google_dns_record_set.domain : d => r.name }
}

output "markers" {
  description = "The ownership markers created by this call: domain => _failover.<domain> name."
  value       = { for d, r in google_dns_record_set.marker : d => r.name }
}
