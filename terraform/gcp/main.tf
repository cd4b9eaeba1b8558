# The failover coordinator in one Google Cloud region: a managed instance group of one
# Container-Optimized OS VM running the container, with a stateful disk for its store, a
# service account allowed to change one Cloud DNS zone and read its secrets, and (in one region
# only) the DNS records it manages. Why a VM and not Cloud Run: see README.md.

locals {
  dns_project     = var.dns_project != null ? var.dns_project : var.project
  initial_primary = var.initial_primary != null ? var.initial_primary : var.observer
  state_device    = "failover-state"
  member          = "serviceAccount:${google_service_account.this.email}"

  # Artifact Registry and Container Registry hosts need docker-credential-gcr on the VM.
  image_host = split("/", var.image)[0]
  registry   = can(regex("(^|\\.)(pkg\\.dev|gcr\\.io)$", local.image_host)) ? local.image_host : ""

  # "NAME", "projects/P/secrets/NAME" or either with "/versions/V".
  secret_parts = {
    for env, ref in var.secrets : env => regex("^(?:projects/([^/]+)/secrets/)?([^/]+)(?:/versions/([^/]+))?$", ref)
  }
  secret_versions = {
    for env, m in local.secret_parts : env => "projects/${coalesce(m[0], var.project)}/secrets/${m[1]}/versions/${coalesce(m[2], "latest")}"
  }
  secret_ids = distinct([for m in values(local.secret_parts) : "${coalesce(m[0], var.project)}/${m[1]}"])

  environment = merge(var.environment, {
    FAILOVER_POLICY   = "/etc/failover/policy.yaml"
    FAILOVER_OBSERVER = var.observer
  })

  # The files start.sh reads (see files/start.sh), written at every boot by cloud-init.
  host_conf = join("", [
    "IMAGE=${var.image}\n",
    "REGISTRY=${local.registry}\n",
    "STATE_DEVICE=${local.state_device}\n",
    "STOP_TIMEOUT=${var.stop_timeout}\n",
  ])
  container_env = join("", [for k in sort(keys(local.environment)) : "${k}=${local.environment[k]}\n"])
  secrets_list  = join("", [for k in sort(keys(local.secret_versions)) : "${k} ${local.secret_versions[k]}\n"])
  command_file  = join("", [for arg in var.command : "${arg}\n"])

  unit = <<-UNIT
    [Unit]
    Description=failover coordinator
    Wants=network-online.target
    After=network-online.target docker.service
    Requires=docker.service

    [Service]
    ExecStart=/bin/bash /etc/failover/start.sh
    ExecStop=/usr/bin/docker stop -t ${var.stop_timeout} failover
    TimeoutStopSec=${var.stop_timeout + 15}
    Restart=always
    RestartSec=5

    [Install]
    WantedBy=multi-user.target
  UNIT

  cloud_config = {
    write_files = [
      { path = "/etc/failover/policy.yaml", permissions = "0644", owner = "root", content = var.policy_yaml },
      { path = "/etc/failover/failover.conf", permissions = "0644", owner = "root", content = local.host_conf },
      { path = "/etc/failover/container.env", permissions = "0644", owner = "root", content = local.container_env },
      { path = "/etc/failover/secrets", permissions = "0644", owner = "root", content = local.secrets_list },
      { path = "/etc/failover/command", permissions = "0644", owner = "root", content = local.command_file },
      { path = "/etc/failover/start.sh", permissions = "0755", owner = "root", content = file("${path.module}/files/start.sh") },
      { path = "/etc/systemd/system/failover.service", permissions = "0644", owner = "root", content = local.unit },
    ]
    runcmd = [
      "systemctl daemon-reload",
      "systemctl start failover.service",
    ]
  }
  user_data = "#cloud-config\n${yamlencode(local.cloud_config)}"

  ingress = {
    for key, rule in {
      proxy-v4 = { port = var.proxy_port, ranges = [for c in var.proxy_ingress_cidrs : c if !strcontains(c, ":")] }
      proxy-v6 = { port = var.proxy_port, ranges = [for c in var.proxy_ingress_cidrs : c if strcontains(c, ":")] }
      api-v4   = { port = var.api_port, ranges = [for c in var.api_ingress_cidrs : c if !strcontains(c, ":")] }
      api-v6   = { port = var.api_port, ranges = [for c in var.api_ingress_cidrs : c if strcontains(c, ":")] }
    } : key => rule if length(rule.ranges) > 0
  }
}

# -- identity: the VM's service account ---------------------------------------------------------

resource "google_service_account" "this" {
  project      = var.project
  account_id   = var.name
  display_name = "failover coordinator (${var.observer})"
}

# Container-Optimized OS ships logs and metrics with the VM's own identity.
resource "google_project_iam_member" "logging" {
  project = var.project
  role    = "roles/logging.logWriter"
  member  = local.member
}

resource "google_project_iam_member" "monitoring" {
  project = var.project
  role    = "roles/monitoring.metricWriter"
  member  = local.member
}

# Cloud DNS: a role on the one managed zone, not on the project. By default a custom role with
# exactly what the clouddns adapter calls (read the zone and its records, submit a change whose
# deletions hold the exact old marker, poll the change).
resource "google_project_iam_custom_role" "dns" {
  count = var.dns_managed_zone != null && var.dns_role == null ? 1 : 0

  project     = local.dns_project
  role_id     = "failoverDns_${replace(var.name, "-", "_")}"
  title       = "failover coordinator DNS (${var.name})"
  description = "Change the records failover manages in one managed zone, granted on that zone only."
  permissions = [
    "dns.changes.create",
    "dns.changes.get",
    "dns.managedZones.get",
    "dns.resourceRecordSets.create",
    "dns.resourceRecordSets.delete",
    "dns.resourceRecordSets.list",
    "dns.resourceRecordSets.update",
  ]
}

resource "google_dns_managed_zone_iam_member" "dns" {
  count = var.dns_managed_zone != null ? 1 : 0

  project      = local.dns_project
  managed_zone = var.dns_managed_zone
  role         = var.dns_role != null ? var.dns_role : google_project_iam_custom_role.dns[0].name
  member       = local.member
}

# Secret Manager: read access to each named secret only.
resource "google_secret_manager_secret_iam_member" "secrets" {
  for_each = toset(local.secret_ids)

  project   = split("/", each.value)[0]
  secret_id = split("/", each.value)[1]
  role      = "roles/secretmanager.secretAccessor"
  member    = local.member
}

# -- the VM: a managed instance group of one ----------------------------------------------------

resource "google_compute_instance_template" "this" {
  project      = var.project
  name_prefix  = "${var.name}-"
  description  = "failover coordinator (${var.observer})"
  machine_type = var.machine_type
  labels       = var.labels

  metadata = {
    user-data                 = local.user_data
    google-logging-enabled    = "true"
    google-monitoring-enabled = "true"
    enable-oslogin            = "TRUE"
    block-project-ssh-keys    = "TRUE"
  }

  disk {
    boot         = true
    source_image = "projects/cos-cloud/global/images/family/cos-stable"
    disk_type    = "pd-balanced"
    disk_size_gb = 10
    auto_delete  = true
    labels       = var.labels
  }

  # The store (sqlite and its audit log), kept across VM recreation by stateful_disk below.
  disk {
    device_name  = local.state_device
    disk_type    = "pd-balanced"
    disk_size_gb = var.state_disk_size_gb
    auto_delete  = false
    labels       = var.labels
  }

  network_interface {
    network    = var.network
    subnetwork = var.subnetwork

    #checkov:skip=CKV_GCP_40:a public IP only when assign_public_ip = true (default false), for subnetworks without Cloud NAT
    dynamic "access_config" {
      for_each = var.assign_public_ip ? [1] : []

      content {}
    }
  }

  service_account {
    email  = google_service_account.this.email
    scopes = ["cloud-platform"]
  }

  shielded_instance_config {
    enable_secure_boot          = true
    enable_vtpm                 = true
    enable_integrity_monitoring = true
  }

  lifecycle {
    create_before_destroy = true
  }

  depends_on = [google_secret_manager_secret_iam_member.secrets]
}

resource "google_compute_health_check" "this" {
  count = var.autohealing ? 1 : 0

  project             = var.project
  name                = "${var.name}-healthz"
  check_interval_sec  = 10
  timeout_sec         = 5
  healthy_threshold   = 2
  unhealthy_threshold = 6

  http_health_check {
    port         = var.api_port
    request_path = "/healthz"
  }
}

resource "google_compute_instance_group_manager" "this" {
  project            = var.project
  name               = var.name
  zone               = var.zone
  base_instance_name = var.name
  target_size        = 1

  version {
    instance_template = google_compute_instance_template.this.id
  }

  stateful_disk {
    device_name = local.state_device
    delete_rule = "ON_PERMANENT_INSTANCE_DELETION"
  }

  # One coordinator per region: an update stops the old VM before it starts the new one (and
  # a stateful disk can only follow the VM that way).
  update_policy {
    type                  = "PROACTIVE"
    minimal_action        = "REPLACE"
    replacement_method    = "RECREATE"
    max_surge_fixed       = 0
    max_unavailable_fixed = 1
  }

  dynamic "auto_healing_policies" {
    for_each = var.autohealing ? [1] : []

    content {
      health_check      = google_compute_health_check.this[0].id
      initial_delay_sec = 300
    }
  }
}

# -- firewall -------------------------------------------------------------------------------------

resource "google_compute_firewall" "ingress" {
  for_each = local.ingress

  project                 = var.project
  name                    = "${var.name}-${each.key}"
  network                 = var.network
  direction               = "INGRESS"
  source_ranges           = each.value.ranges
  target_service_accounts = [google_service_account.this.email]

  allow {
    protocol = "tcp"
    ports    = [tostring(each.value.port)]
  }
}

resource "google_compute_firewall" "health_checks" {
  count = var.autohealing ? 1 : 0

  project                 = var.project
  name                    = "${var.name}-health-checks"
  network                 = var.network
  direction               = "INGRESS"
  source_ranges           = ["35.191.0.0/16", "130.211.0.0/22"]
  target_service_accounts = [google_service_account.this.email]

  allow {
    protocol = "tcp"
    ports    = [tostring(var.api_port)]
  }
}

# -- the records failover manages -------------------------------------------------------------
# Created once (in the one module call with create_records = true) so that they exist with a
# known shape; from then on failover owns their values and moves them with fenced changes, so
# Terraform ignores the values and TTLs it finds.

resource "google_dns_record_set" "domain" {
  for_each = var.create_records ? var.domains : {}

  project      = local.dns_project
  managed_zone = var.dns_managed_zone
  name         = "${trimsuffix(each.key, ".")}."
  type         = each.value.type
  ttl          = var.record_ttl
  rrdatas      = each.value.values

  lifecycle {
    ignore_changes = [rrdatas, ttl]

    precondition {
      condition     = var.dns_managed_zone != null && length(each.value.values) > 0
      error_message = "create_records needs dns_managed_zone and, for each domain, the initial values."
    }
  }
}

resource "google_dns_record_set" "marker" {
  for_each = var.create_records ? var.domains : {}

  project      = local.dns_project
  managed_zone = var.dns_managed_zone
  name         = "_failover.${trimsuffix(each.key, ".")}."
  type         = "TXT"
  ttl          = var.record_ttl
  rrdatas      = ["\"epoch=0 primary=${local.initial_primary} by=terraform at=0\""]

  lifecycle {
    ignore_changes = [rrdatas, ttl]
  }
}
