//! Object name rules as kube-apiserver applies them per kind.

/// DNS-1123 subdomain: lowercase alphanumerics, `-` and `.`, alphanumeric at both ends, ≤253.
pub fn dns_subdomain(name: &str) -> Result<(), String> {
    if name.len() > 253 {
        return Err("must be no more than 253 characters".into());
    }
    for part in name.split('.') {
        dns_label_chars(part).map_err(|_| {
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".to_string()
        })?;
    }
    Ok(())
}

/// DNS-1123 label: lowercase alphanumerics and `-`, alphanumeric at both ends, ≤63.
pub fn dns_label(name: &str) -> Result<(), String> {
    if name.len() > 63 {
        return Err("must be no more than 63 characters".into());
    }
    dns_label_chars(name).map_err(|_| {
        "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".to_string()
    })
}

fn dns_label_chars(s: &str) -> Result<(), ()> {
    let bytes = s.as_bytes();
    let ok_char = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    match (bytes.first(), bytes.last()) {
        (Some(&f), Some(&l)) if ok_char(f) && ok_char(l) => {}
        _ => return Err(()),
    }
    if bytes.iter().all(|&c| ok_char(c) || c == b'-') { Ok(()) } else { Err(()) }
}

/// Path-segment names (RBAC objects): anything but `.`, `..`, or containing `/` or `%`.
pub fn path_segment(name: &str) -> Result<(), String> {
    if name == "." || name == ".." {
        return Err(format!("may not be '{name}'"));
    }
    if name.contains('/') || name.contains('%') {
        return Err("may not contain '/' or '%'".into());
    }
    Ok(())
}

/// Validates a name for the given resource.
pub fn validate(group: &str, resource: &str, name: &str) -> Result<(), String> {
    match (group, resource) {
        ("", "namespaces") | ("", "services") => dns_label(name),
        ("rbac.authorization.k8s.io", _) => path_segment(name),
        _ => dns_subdomain(name),
    }
}

/// Random suffix for `generateName`, from the alphabet Kubernetes uses (no vowels, no
/// look-alike characters).
pub fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes.iter().take(5).map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(dns_subdomain("web-1.example").is_ok());
        assert!(dns_subdomain("Web").is_err());
        assert!(dns_subdomain("-a").is_err());
        assert!(dns_label("a.b").is_err());
        assert!(validate("rbac.authorization.k8s.io", "clusterroles", "system:controller:x").is_ok());
        assert_eq!(random_suffix().len(), 5);
    }
}
