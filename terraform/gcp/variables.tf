# Inputs of the failover coordinator module for one Google Cloud region (a managed instance
# group of one Container-Optimized OS VM). No variable holds a secret: secrets stay in Secret
# Manager and reach the container as environment variables (see `secrets`).

variable "name" {
  description = "Name of the deployment, prefix of every resource name. Make it unique per region and project."
  type        = string
  default     = "failover"

  validation {
    condition     = can(regex("^[a-z][-a-z0-9]{4,20}[a-z0-9]$", var.name))
    error_message = "name: 6 to 22 lowercase letters, digits and '-', starting with a letter."
  }
}

variable "project" {
  description = "Project of the VM, its service account and the custom DNS role."
  type        = string
}

variable "zone" {
  description = "Zone of the VM, e.g. europe-west1-b."
  type        = string
}

variable "image" {
  description = "Container image built from the repository's Dockerfile, e.g. europe-docker.pkg.dev/my-project/failover/failover:0.1.0. The VM's service account needs read access to it (roles/artifactregistry.reader)."
  type        = string
}

variable "observer" {
  description = "The policy region this coordinator runs as (sets FAILOVER_OBSERVER; one of the policy's regions[].name)."
  type        = string
}

variable "policy_yaml" {
  description = "The policy file's content (no secrets: it only names environment variables). Mounted read-only at /etc/failover/policy.yaml."
  type        = string
}

variable "secrets" {
  description = "Environment variable name => Secret Manager secret: 'NAME' (in `project`), 'projects/P/secrets/NAME', optionally ending in '/versions/V' (default: latest). Read by the VM at container start; never pass through Terraform."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.secrets : can(regex("^[A-Za-z_][A-Za-z0-9_]*$", k)) && can(regex("^(projects/[^/]+/secrets/)?[A-Za-z0-9_-]+(/versions/[^/]+)?$", v))])
    error_message = "secrets: keys are environment variable names, values are secret names or projects/P/secrets/NAME[/versions/V]."
  }
}

variable "environment" {
  description = "Extra plain (non-secret) environment variables for the container, e.g. { FAILOVER_LOG_FORMAT = \"json\" }. One line each: no newlines."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.environment : can(regex("^[A-Za-z_][A-Za-z0-9_]*$", k)) && !strcontains(v, "\n")])
    error_message = "environment: keys are environment variable names, values hold no newline."
  }
}

variable "command" {
  description = "The failover subcommand and its options that the container runs."
  type        = list(string)
  default     = ["run"]
}

variable "machine_type" {
  description = "VM machine type."
  type        = string
  default     = "e2-small"
}

variable "network" {
  description = "VPC network of the VM (and of the firewall rules)."
  type        = string
  default     = "default"
}

variable "subnetwork" {
  description = "Subnetwork of the VM; null: the network's subnetwork in the zone's region (auto mode networks)."
  type        = string
  default     = null
}

variable "assign_public_ip" {
  description = "Give the VM an ephemeral public IP. Without one it needs Cloud NAT to reach gateways and webhooks outside the VPC (and Private Google Access for Google APIs)."
  type        = bool
  default     = false
}

variable "state_disk_size_gb" {
  description = "Size of the stateful disk mounted at /var/lib/failover (sqlite store and audit log). It survives VM recreation."
  type        = number
  default     = 10
}

variable "proxy_port" {
  description = "Port of the embedded proxy (the policy's proxy.listen)."
  type        = number
  default     = 8443
}

variable "api_port" {
  description = "Port of the admin API (the policy's api.listen; bind it to 0.0.0.0 there to reach it from outside the VM)."
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

variable "autohealing" {
  description = "Recreate the VM when GET /healthz on api_port stops answering. Needs api.listen on 0.0.0.0 in the policy (the health checkers come from Google's ranges)."
  type        = bool
  default     = false
}

variable "stop_timeout" {
  description = "Seconds between SIGTERM and SIGKILL; longer than the policy's proxy.drain_time so connections drain."
  type        = number
  default     = 40
}

variable "dns_managed_zone" {
  description = "Name (not DNS name) of the Cloud DNS managed zone of the policy's clouddns traffic blocks; null grants no DNS access."
  type        = string
  default     = null
}

variable "dns_project" {
  description = "Project of the managed zone; null: project."
  type        = string
  default     = null
}

variable "dns_role" {
  description = "Role granted to the service account on the managed zone only. null: a custom role with just the permissions failover uses (dns.changes.create/get, dns.resourceRecordSets.create/delete/update/list, dns.managedZones.get), created in the zone's project; or e.g. \"roles/dns.admin\"."
  type        = string
  default     = null
}

variable "domains" {
  description = "Records to create in the managed zone when create_records is true: domain => {type, values} (CNAME values end with a dot). After creation failover owns the values."
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
  description = "Create each domain's record and its _failover.<domain> TXT marker. The zone is shared by every region: set it in exactly one of the module calls."
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

variable "labels" {
  description = "Labels for the VM, its disks and the template."
  type        = map(string)
  default     = {}
}
