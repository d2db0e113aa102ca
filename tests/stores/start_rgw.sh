#!/usr/bin/env bash
# A single-node Ceph cluster for the store suite: one monitor, one memstore OSD, no auth,
# pools of size 1, and radosgw with the beast frontend on 127.0.0.1:RGW_PORT, plus an S3 user.
# Everything lives in DIR; the daemons' pid files are in DIR/run (stores_test.py stops them).
# usage: tests/stores/start_rgw.sh DIR MON_PORT RGW_PORT ACCESS_KEY SECRET_KEY
set -euo pipefail
dir=$1; mon_port=$2; rgw_port=$3; access=$4; secret=$5
mkdir -p "$dir"/{mon,osd,rgw,run,log}
fsid=$(python3 -c 'import uuid; print(uuid.uuid4())')
cat >"$dir/ceph.conf" <<CONF
[global]
fsid = $fsid
mon_host = v1:127.0.0.1:$mon_port
mon_initial_members = a
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
ms_bind_msgr2 = false
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
osd_crush_update_on_start = false
osd_class_update_on_start = false
# The monitor refuses to start when the host's disk is 95% full; this test cluster keeps its
# data in memory (memstore) and a few MB of monitor store, so a busy CI disk must not stop it.
mon_data_avail_crit = 0
mon_data_avail_warn = 0
osd_objectstore = memstore
memstore_device_bytes = 1073741824
osd_max_object_name_len = 256
osd_max_object_namespace_len = 64
run_dir = $dir/run
log_file = $dir/log/\$name.log
admin_socket = $dir/run/\$name.asok
pid_file = $dir/run/\$name.pid
[mon.a]
mon_data = $dir/mon
mon_addr = v1:127.0.0.1:$mon_port
[osd.0]
osd_data = $dir/osd
[client.rgw.a]
# radosgw logs in to the monitor only with these set to crc.
rgw_frontends = beast endpoint=127.0.0.1:$rgw_port
rgw_data = $dir/rgw
ms_mon_client_mode = crc
ms_client_mode = crc
rgw_dns_name = 127.0.0.1
CONF
monmaptool --create --addv a "[v1:127.0.0.1:$mon_port]" --fsid "$fsid" "$dir/monmap" >/dev/null
ceph-mon -c "$dir/ceph.conf" --mkfs -i a --monmap "$dir/monmap"
ceph-mon -c "$dir/ceph.conf" -i a
# The OSD is placed in the CRUSH map here, not by itself at boot: its own command can go out
# before it has the monitor map and is refused ("handle_command on fsid 0000…", then "wrong
# fsid"), and the OSD exits. Seen about one start in three on a loaded machine.
ceph=(ceph -c "$dir/ceph.conf" --connect-timeout 30)
"${ceph[@]}" osd create >/dev/null
"${ceph[@]}" osd crush add-bucket localhost host >/dev/null 2>&1
"${ceph[@]}" osd crush move localhost root=default >/dev/null 2>&1
"${ceph[@]}" osd crush add osd.0 1.0 host=localhost >/dev/null 2>&1
ceph-osd -c "$dir/ceph.conf" -i 0 --mkfs
ceph-osd -c "$dir/ceph.conf" -i 0
# radosgw needs the OSD up to create its pools; both waits are bounded.
for _ in $(seq 1 120); do
    [[ "$(ceph -c "$dir/ceph.conf" --connect-timeout 10 osd stat 2>/dev/null)" == *"1 up"* ]] && break
    sleep 0.5
done
radosgw -c "$dir/ceph.conf" -n client.rgw.a
radosgw-admin -c "$dir/ceph.conf" user create --uid s3canary --display-name s3canary \
    --access-key "$access" --secret-key "$secret" >/dev/null

