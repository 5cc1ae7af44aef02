"""The Kubernetes "restricted" Pod Security Standard, as one check for every pod spec we write:
the manifests' workloads and the pods the pipeline creates at run time (KServe's predictor, the
TFJob replicas, Katib's trials). https://kubernetes.io/docs/concepts/security/pod-security-standards/

`assert_restricted` checks the baseline and restricted controls field by field, as the Pod
Security admission controller reads them (Kubernetes 1.31): a container's setting wins over the
pod's where both exist, and a forbidden value is refused at either level even when overridden.
"""

from __future__ import annotations

ALLOWED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
    "projected", "secret",
}  # fmt: skip
ALLOWED_CAPABILITY = "NET_BIND_SERVICE"
ALLOWED_SECCOMP = {"RuntimeDefault", "Localhost"}
ALLOWED_APPARMOR = {"RuntimeDefault", "Localhost"}
ALLOWED_SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t",
                         "container_engine_t"}  # fmt: skip
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}  # fmt: skip
APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"


def all_containers(pod: dict) -> list[dict]:
    """Init, regular and ephemeral containers: the standard covers all three."""
    return [*pod.get("initContainers", []), *pod["containers"], *pod.get("ephemeralContainers", [])]


def effective(pod: dict, container: dict) -> dict:
    """The security context the container runs with: its own settings over the pod's."""
    return {**(pod.get("securityContext") or {}), **(container.get("securityContext") or {})}


def assert_restricted(pod: dict, where: str, annotations: dict | None = None) -> None:
    """Fail, naming `where` and the container, unless `pod` (a pod spec) meets the restricted
    Pod Security Standard; `annotations` are the pod's, for the AppArmor ones."""
    pod_ctx = pod.get("securityContext") or {}
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        assert pod.get(field) is not True, f"{where}: {field}"
    for volume in pod.get("volumes", []):
        kinds = set(volume) - {"name"}
        assert kinds <= ALLOWED_VOLUMES, f"{where}: volume {volume['name']} is {kinds}"
    sysctls = {s["name"] for s in pod_ctx.get("sysctls", [])}
    assert sysctls <= SAFE_SYSCTLS, f"{where}: unsafe sysctls {sysctls - SAFE_SYSCTLS}"
    _assert_context_fields(pod_ctx, f"{where} (pod)")
    for key, value in (annotations or {}).items():
        if key.startswith(APPARMOR_ANNOTATION):
            assert value == "runtime/default" or value.startswith("localhost/"), f"{where}: {key}"
    for c in all_containers(pod):
        at = f"{where}, container {c['name']}"
        own = c.get("securityContext") or {}
        _assert_context_fields(own, at)
        ctx = effective(pod, c)
        assert ctx.get("runAsNonRoot") is True, f"{at}: runAsNonRoot"
        assert (ctx.get("seccompProfile") or {}).get("type") in ALLOWED_SECCOMP, f"{at}: seccomp"
        assert own.get("privileged") is not True, f"{at}: privileged"
        assert own.get("allowPrivilegeEscalation") is False, f"{at}: allowPrivilegeEscalation"
        assert own.get("procMount") in (None, "Default"), f"{at}: procMount"
        capabilities = own.get("capabilities") or {}
        assert "ALL" in capabilities.get("drop", []), f"{at}: capabilities not dropped (ALL)"
        added = set(capabilities.get("add", [])) - {ALLOWED_CAPABILITY}
        assert not added, f"{at}: capabilities added {added}"
        for port in c.get("ports", []):
            assert port.get("hostPort") in (None, 0), f"{at}: hostPort {port['hostPort']}"


def _assert_context_fields(ctx: dict, where: str) -> None:
    """The fields the standard restricts wherever they are set, pod or container level."""
    assert ctx.get("runAsUser") != 0, f"{where}: runAsUser 0"
    assert ctx.get("runAsNonRoot") is not False, f"{where}: runAsNonRoot false"
    seccomp = (ctx.get("seccompProfile") or {}).get("type")
    assert seccomp in ALLOWED_SECCOMP | {None}, f"{where}: seccompProfile {seccomp}"
    apparmor = (ctx.get("appArmorProfile") or {}).get("type")
    assert apparmor in ALLOWED_APPARMOR | {None}, f"{where}: appArmorProfile {apparmor}"
    selinux = ctx.get("seLinuxOptions") or {}
    assert selinux.get("type", "") in ALLOWED_SELINUX_TYPES, f"{where}: seLinuxOptions.type"
    assert not selinux.get("user") and not selinux.get("role"), f"{where}: seLinux user/role"
    host_process = (ctx.get("windowsOptions") or {}).get("hostProcess")
    assert host_process is not True, f"{where}: windowsOptions.hostProcess"


def assert_locked_down(pod: dict, where: str, annotations: dict | None = None) -> None:
    """The standard, and the project's own rules on top: every container runs as an explicit
    non-zero UID (the kubelet then need not trust the image's USER) on a read-only root
    filesystem (whatever must be written goes to a volume, such as an emptyDir at /tmp), under
    the runtime's default seccomp profile, and adds no capability at all."""
    assert_restricted(pod, where, annotations)
    for c in all_containers(pod):
        at = f"{where}, container {c['name']}"
        ctx = effective(pod, c)
        assert ctx.get("runAsUser", 0) != 0, f"{at}: no runAsUser"
        assert ctx.get("readOnlyRootFilesystem") is True, f"{at}: writable root filesystem"
        assert ctx["seccompProfile"]["type"] == "RuntimeDefault", f"{at}: seccomp"
        assert not (ctx.get("capabilities") or {}).get("add"), f"{at}: capabilities added"
