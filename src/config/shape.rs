//! The file's shape, checked against the default file before anything is read
//! from it: every unknown key and every value of the wrong type is reported at
//! once, by its `section.key` name, in the words of the file (string, integer,
//! …) rather than of the code.

use super::ConfigError;

/// Tables whose keys are the user's own (category names, template keys).
const FREE_FORM: [&str; 5] = [
    "rules.categories",
    "sms.templates",
    "sms.aliyun.templates",
    "sms.tencent.templates",
    "platforms.products",
];

/// Keys that moved, and where to.
const MOVED: [(&str, &str); 1] = [("sms.webhook_url", "[sms.webhook] url")];

/// Every problem of `user`'s shape compared with `defaults`. The offending keys
/// are taken out of `user`, so the rest can still be checked for its values.
pub(super) fn check(defaults: &toml::Table, user: &mut toml::Table) -> Vec<ConfigError> {
    let mut problems = Vec::new();
    walk("", defaults, user, &mut problems);
    problems
}

fn walk(
    path: &str,
    defaults: &toml::Table,
    user: &mut toml::Table,
    problems: &mut Vec<ConfigError>,
) {
    let before = problems.len();
    let mut bad = Vec::new();
    for (key, value) in user.iter_mut() {
        let reported = problems.len();
        let name = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        if let Some((_, to)) = MOVED.iter().find(|(from, _)| *from == name) {
            problems.push(ConfigError::Shape(format!(
                "{name}: this setting is now {to}"
            )));
            bad.push(key.clone());
            continue;
        }
        if FREE_FORM.contains(&name.as_str()) {
            free_form(&name, value, problems);
            if problems.len() > reported {
                bad.push(key.clone());
            }
            continue;
        }
        let Some(default) = defaults.get(key) else {
            let known: Vec<&str> = defaults.keys().map(String::as_str).collect();
            let section = if path.is_empty() { "the file" } else { path };
            problems.push(ConfigError::Shape(format!(
                "{name}: unknown setting; {section} has {}",
                known.join(", ")
            )));
            bad.push(key.clone());
            continue;
        };
        match (default, value) {
            (toml::Value::Table(default), toml::Value::Table(user)) => {
                walk(&name, default, user, problems)
            }
            (default, value) if default.type_str() != value.type_str() => {
                problems.push(ConfigError::Shape(format!(
                    "{name} = {value}: must be {} (like the default, {default})",
                    kind(default)
                )));
                bad.push(key.clone());
            }
            _ => {}
        }
    }
    if problems.len() > before {
        for key in bad {
            user.remove(&key);
        }
    }
}

/// `[rules.categories.NAME]` holds tables of rule values; `[sms.templates]`
/// holds strings; a provider's templates are `{ code, params }` tables.
fn free_form(name: &str, value: &toml::Value, problems: &mut Vec<ConfigError>) {
    let toml::Value::Table(table) = value else {
        problems.push(ConfigError::Shape(format!("{name}: must be a table")));
        return;
    };
    for (key, value) in table {
        let ok = match name {
            "sms.templates" => value.is_str(),
            "sms.aliyun.templates" | "sms.tencent.templates" => {
                value.as_table().is_some_and(|template| {
                    template.iter().all(|(key, value)| match key.as_str() {
                        "code" => value.is_str(),
                        "params" => value
                            .as_array()
                            .is_some_and(|params| params.iter().all(toml::Value::is_str)),
                        _ => false,
                    })
                })
            }
            "platforms.products" => value
                .as_table()
                .is_some_and(|settings| settings.values().all(toml::Value::is_str)),
            _ => value
                .as_table()
                .is_some_and(|settings| settings.values().all(|v| v.is_str() || v.is_integer())),
        };
        if !ok {
            let expected = match name {
                "sms.templates" => "a string",
                "rules.categories" => "a table of rule settings (strings and whole numbers)",
                "platforms.products" => "{ decoder = \"cjt188\" } or { decoder = \"fields\", total = \"…\", unit = \"L\" }",
                _ => "{ code = \"…\", params = [\"placeholder\", …] }",
            };
            problems.push(ConfigError::Shape(format!(
                "{name}.{key}: must be {expected}"
            )));
        }
    }
}

fn kind(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "a whole number",
        toml::Value::Float(_) => "a number",
        toml::Value::Boolean(_) => "true or false",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "a list",
        toml::Value::Table(_) => "a table",
    }
}
