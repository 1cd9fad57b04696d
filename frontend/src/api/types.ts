// The API's JSON, as the gateway writes it: proto field names
// (snake_case), every field present, enums as their names, 64-bit integers
// as strings, durations as "1.5s", timestamps as RFC 3339.

export type Int64 = string;
export type Timestamp = string | null;

export type Role = 'ROLE_UNSPECIFIED' | 'ROLE_ADMIN' | 'ROLE_VIEWER' | 'ROLE_AGENT' | 'ROLE_SERVER' | 'ROLE_JOBS' | 'ROLE_METRICS';

export interface Token {
  id: string; role: Role; description: string; created_at: Timestamp; expires_at: Timestamp;
  revoked: boolean; uses: number; max_uses: number;
}

export interface ServerInfo {
  id: string; name: string; raft_address: string; api_address: string; raft_role: string;
  leader: boolean; last_contact: string | null; last_index: Int64; healthy: boolean; version: string;
  checks: { name: string; ok: boolean; required: boolean; message: string }[]; ready: boolean;
}

export interface Settings {
  scheduling_strategy: string;
  edge: Record<string, unknown> | null;
  limits: Record<string, Int64 | null> | null;
  audit: { max_age: string | null; max_events: Int64 | null } | null;
  security: Record<string, unknown> | null;
  quotas: { jobs_per_token: Int64 | null; output_bytes_per_token: Int64 | null } | null;
}

export interface Status {
  cluster_id: string; version: string; server_id: string; leader_id: string; leader_address: string;
  raft_state: string; term: Int64; last_index: Int64; commit_index: Int64; applied_index: Int64;
  servers: { id: string; address: string; suffrage: string; leader: boolean }[];
  created_at: Timestamp; server_name: string; settings: Settings | null;
  /** Jobs per state name; a state without jobs is absent. */
  jobs_by_state?: Record<string, Int64> | null;
  /** Edge traffic summed over the nodes with a live session that run the edge. */
  edge?: EdgeTraffic | null;
  /** How many nodes edge sums (0: no edge node reported). */
  edge_nodes?: number;
}

/** EdgeTraffic counts since each agent's start. */
export interface EdgeTraffic { requests: Int64; errors: Int64 }

export interface Resources { cpu_millis: Int64; memory_bytes: Int64 }

export interface Node {
  id: string; name: string; address: string; state: string; availability: string;
  labels: Record<string, string>; user_labels: Record<string, string>;
  resources: Resources | null; allocated: Resources | null; version: string;
  created_at: Timestamp; updated_at: Timestamp; last_seen: Timestamp; tasks: number;
  cert_not_after: Timestamp;
  /** What its edge served since its agent started; null when it runs no edge. */
  edge?: EdgeTraffic | null;
}

export interface ContainerSpec {
  image: string; command: string[]; env: string[];
  resources: Record<string, Int64> | null;
  restart: string; ports: { host_port: number; container_port: number; protocol: string }[];
  network: string; tty: boolean; stdin_open: boolean; user: string; workdir: string;
  mounts: { type: string; source: string; target: string; read_only: boolean }[];
}

export interface Container {
  id: string; name: string; spec: ContainerSpec | null; node_id: string; desired: string;
  status: {
    state: string; exit_code: number; oom_killed: boolean; error: string;
    started_at: Timestamp; finished_at: Timestamp; restart_count: number; ip: string;
    health: string; health_output: string;
  } | null;
  created_at: Timestamp; updated_at: Timestamp; image_digest: string; service_id: string;
  slot: number; service_version: Int64; pending_reason: string; message: string; job_id: string;
}

export interface ServiceSpec {
  task: ContainerSpec | null; mode: string; replicas: Int64;
  placement: { constraints: string[]; spread: string[] } | null;
  update: Record<string, unknown> | null;
}

export interface Service {
  id: string; name: string; spec: ServiceSpec | null; previous_spec: ServiceSpec | null;
  version: Int64; revision: Int64;
  update: { state: string; message: string; started_at: Timestamp; completed_at: Timestamp } | null;
  counts: { desired: Int64; running: Int64; pending: Int64; updated: Int64 } | null;
  image_digest: string; created_at: Timestamp; updated_at: Timestamp;
}

export interface JobSpec {
  image: string; command: string[]; env: string[]; input_digest: string; timeout: string | null;
  priority: number; queue: string; max_attempts: number; network: boolean;
  labels: Record<string, string>; output_ttl: string | null;
}

export interface JobAttempt {
  id: string; number: number; node_id: string; state: string; assigned_at: Timestamp;
  started_at: Timestamp; finished_at: Timestamp; exit_code: number; oom_killed: boolean;
  timed_out: boolean; error: string;
}

export interface Job {
  id: string; spec: JobSpec | null; state: string; attempts: JobAttempt[]; owner_token_id: string;
  created_at: Timestamp; started_at: Timestamp; finished_at: Timestamp; exit_code: number;
  message: string; output_digest: string; output_size: Int64; output_files: number;
  logs_digest: string; expires_at: Timestamp; cancel_requested: boolean; seq: Int64;
  updated_at: Timestamp;
}

export interface Queue { name: string; max_running: number; queued: Int64; running: Int64; allow_network: boolean }

export interface Image { digest: string; names: string[]; size: Int64; created_at: Timestamp }

export interface Route {
  name: string; version: Int64; created_at: Timestamp; updated_at: Timestamp;
  spec: { hosts: string[]; path_prefix: string; service: string; port: number;
    upstreams: { address: string; weight: number }[]; load_balancing: string; set: string } | null;
  endpoints: { id: string; address: string; node_id: string; weight: number }[];
}

export interface SiteVersion { version: number; bundle_digest: string; bundle_size: Int64; files: number; content_bytes: Int64; deployed_at: Timestamp }
export interface Site {
  name: string; spec: { hosts: string[]; path_prefix: string; spa: boolean } | null;
  current: number; versions: SiteVersion[]; created_at: Timestamp; updated_at: Timestamp;
}

export interface Cert {
  name: string; source: string; hosts: string[]; issuer: string; subject: string;
  not_before: Timestamp; not_after: Timestamp; renewal_state: string; last_error: string;
  renew_after: Timestamp; used_by: string[]; sha256: string;
}

export interface Volume { name: string; node_id: string; node_name: string; size_bytes: Int64; created_at: Timestamp; used_by: string[] }

export interface AuditEvent {
  index: Int64; time: Timestamp; token_id: string; role: Role; node_id: string; server_id: string;
  method: string; target: string; source: string; outcome: string; error: string; server: string;
}

export interface LogLine { stream: string; data: string; task?: string }

export interface Readiness { status: string; checks: { name: string; ok: boolean; required: boolean; message?: string }[] }
