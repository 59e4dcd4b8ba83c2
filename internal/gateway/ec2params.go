package gateway

import (
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// ec2Lists names the lists of EC2 requests as CloudTrail writes them: the
// query parameter (InstanceId.N) becomes a set (instancesSet) of items,
// each an object naming its value (instanceId). The names come from EC2's
// XML request format, not from the botocore model; this table holds those
// seen in real records. Others are written <name>Set with <name> items.
var ec2Lists = map[string][2]string{
	"InstanceId":             {"instancesSet", "instanceId"},
	"VolumeId":               {"volumeSet", "volumeId"},
	"VpcId":                  {"vpcSet", "vpcId"},
	"SubnetId":               {"subnetSet", "subnetId"},
	"ImageId":                {"imagesSet", "imageId"},
	"SnapshotId":             {"snapshotSet", "snapshotId"},
	"Owner":                  {"ownersSet", "owner"},
	"ExecutableBy":           {"executableBySet", "executableBy"},
	"RestorableBy":           {"sharedUsersSet", "user"},
	"GroupId":                {"securityGroupIdSet", "groupId"},
	"SecurityGroupId":        {"groupSet", "groupId"},
	"GroupName":              {"securityGroupSet", "groupName"},
	"KeyName":                {"keySet", "keyName"},
	"KeyPairId":              {"keyPairIdSet", "keyPairId"},
	"AllocationId":           {"allocationIdsSet", "allocationId"},
	"PublicIp":               {"publicIpsSet", "publicIp"},
	"ResourceId":             {"resourcesSet", "resourceId"},
	"AttributeName":          {"accountAttributeNameSet", "attributeName"},
	"RegionName":             {"regionSet", "regionName"},
	"ZoneName":               {"availabilityZoneSet", "zoneName"},
	"ZoneId":                 {"availabilityZoneIdSet", "zoneId"},
	"BundleId":               {"bundlesSet", "bundleId"},
	"DhcpOptionsId":          {"dhcpOptionsSet", "dhcpOptionsId"},
	"NetworkInterfaceId":     {"networkInterfaceIdSet", "networkInterfaceId"},
	"RouteTableId":           {"routeTableIdSet", "routeTableId"},
	"InternetGatewayId":      {"internetGatewayIdSet", "internetGatewayId"},
	"NetworkAclId":           {"networkAclIdSet", "networkAclId"},
	"VpcPeeringConnectionId": {"vpcPeeringConnectionIdSet", "vpcPeeringConnectionId"},
	"CustomerGatewayId":      {"customerGatewaySet", "customerGatewayId"},
	"VpnConnectionId":        {"vpnConnectionSet", "vpnConnectionId"},
	"VpnGatewayId":           {"vpnGatewaySet", "vpnGatewayId"},
	"PlacementGroupId":       {"placementGroupIdSet", "groupId"},
	"Value":                  {"valueSet", "value"},
}

// ec2StructLists names lists of structures: Filter.N.Name → filterSet.
var ec2StructLists = map[string]string{
	"Filter":             "filterSet",
	"Tag":                "tagSet",
	"TagSpecification":   "tagSpecificationSet",
	"IpPermissions":      "ipPermissions",
	"IpRanges":           "ipRanges",
	"Ipv6Ranges":         "ipv6Ranges",
	"PrefixListIds":      "prefixListIds",
	"Groups":             "groups",
	"BlockDeviceMapping": "blockDeviceMapping",
	"PrivateIpAddresses": "privateIpAddressesSet",
	"NetworkInterface":   "networkInterfaceSet",
	"Add":                "add",
	"Remove":             "remove",
}

// ec2Params turns EC2 query parameters into requestParameters as
// CloudTrail writes them: names lower-camel, lists as {"items": [...]}
// under their set names (InstanceId.1 → instancesSet.items[].instanceId),
// the tags of a tag specification as a plain array, RunInstances' image
// and counts inside instancesSet.
func ec2Params(form url.Values, op string, sensitive map[string]bool) map[string]any {
	root := map[string]any{}
	keys := make([]string, 0, len(form))
	for k := range form {
		if k == "Action" || k == "Version" || strings.HasPrefix(k, "X-Amz-") || k == "AWSAccessKeyId" ||
			k == "Signature" || k == "SignatureMethod" || k == "SignatureVersion" || k == "Timestamp" {
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil
	}
	sort.Strings(keys)
	for _, k := range keys {
		// Raw names: ec2Value renames.
		m := root
		segs := strings.Split(k, ".")
		for i, s := range segs {
			if i == len(segs)-1 {
				if _, exists := m[s]; !exists {
					m[s] = form.Get(k)
				}
				break
			}
			next, ok := m[s].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[s] = next
			}
			m = next
		}
	}
	out, ok := ec2Value(root, "", 0).(map[string]any)
	if !ok {
		return nil
	}
	if op == "RunInstances" {
		inst := map[string]any{}
		for _, k := range []string{"imageId", "minCount", "maxCount", "keyName"} {
			if v, ok := out[k]; ok {
				inst[k] = v
				delete(out, k)
			}
		}
		if len(inst) > 0 {
			out["instancesSet"] = map[string]any{"items": []any{inst}}
		}
	}
	redact(out, sensitive)
	return out
}

// ec2Value converts the raw tree under a parameter named name (in its
// parent: "Tag" inside a TagSpecification is a plain array).
func ec2Value(v any, parent string, depth int) any {
	m, ok := v.(map[string]any)
	if !ok || depth > 32 {
		return v
	}
	out := map[string]any{}
	for k, x := range m {
		xm, isMap := x.(map[string]any)
		if !isMap || !numericKeys(xm) {
			out[lowerFirst(k)] = ec2Value(x, k, depth+1)
			continue
		}
		// A list: its elements in index order.
		idx := make([]int, 0, len(xm))
		for ik := range xm {
			n, _ := strconv.Atoi(ik)
			idx = append(idx, n)
		}
		sort.Ints(idx)
		items := make([]any, 0, len(idx))
		scalar := true
		for _, n := range idx {
			e := xm[strconv.Itoa(n)]
			if _, ok := e.(map[string]any); ok {
				scalar = false
			}
			items = append(items, e)
		}
		if scalar {
			set, elem := lowerFirst(k)+"Set", lowerFirst(k)
			if names, ok := ec2Lists[k]; ok {
				set, elem = names[0], names[1]
			}
			for i, e := range items {
				items[i] = map[string]any{elem: e}
			}
			out[set] = map[string]any{"items": items}
			continue
		}
		for i, e := range items {
			items[i] = ec2Value(e, k, depth+1)
		}
		if k == "Tag" && parent == "TagSpecification" {
			out["tags"] = items
			continue
		}
		set := lowerFirst(k) + "Set"
		if n, ok := ec2StructLists[k]; ok {
			set = n
		}
		out[set] = map[string]any{"items": items}
	}
	return out
}

func numericKeys(m map[string]any) bool {
	if len(m) == 0 {
		return false
	}
	for k := range m {
		if _, err := strconv.Atoi(k); err != nil {
			return false
		}
	}
	return true
}
