//! A directory snapshot's end users, packed: their ids, companies, external ids and emails in
//! one string, and of names and surnames only whether they are empty (what the hot path reads:
//! fills write a field only where it is empty). About 120 bytes a user where a `Vec<EndUser>`
//! took about 320 (six strings each), and a user's text is one or two cache lines.

use crate::domain::EndUser;

/// A part of the text: (start, length); `NONE` for an absent field.
type Span = (u32, u32);

const NONE: Span = (u32::MAX, 0);

#[derive(Debug, Clone, Copy)]
struct Packed {
    id: Span,
    company: Span,
    external_id: Span,
    email: Span,
    /// Bits: name empty, surname empty, email empty.
    empty: u8,
}

const NAME_EMPTY: u8 = 1;
const SURNAME_EMPTY: u8 = 2;
const EMAIL_EMPTY: u8 = 4;

/// An end user of the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserRef<'a> {
    /// The service's id.
    pub id: &'a str,
    pub company_id: &'a str,
    pub external_id: Option<&'a str>,
    pub email: Option<&'a str>,
    /// The stored name, surname and email are absent or empty.
    pub name_empty: bool,
    pub surname_empty: bool,
    pub email_empty: bool,
}

#[derive(Debug, Default)]
pub struct UserList {
    text: String,
    users: Vec<Packed>,
}

fn empty(f: &Option<String>) -> bool {
    f.as_deref().is_none_or(str::is_empty)
}

impl UserList {
    /// The users, in order (each dropped as it is packed).
    pub fn new(users: Vec<EndUser>) -> Self {
        let len: usize = users
            .iter()
            .map(|u| {
                u.id.len()
                    + u.company_id.len()
                    + u.external_id.as_ref().map_or(0, String::len)
                    + u.email.as_ref().map_or(0, String::len)
            })
            .sum();
        let mut list = Self {
            text: String::with_capacity(len),
            users: Vec::with_capacity(users.len()),
        };
        for u in users {
            let mut empty_bits = 0;
            for (f, bit) in [
                (&u.name, NAME_EMPTY),
                (&u.surname, SURNAME_EMPTY),
                (&u.email, EMAIL_EMPTY),
            ] {
                if empty(f) {
                    empty_bits |= bit;
                }
            }
            let packed = Packed {
                id: list.push(Some(&u.id)),
                company: list.push(Some(&u.company_id)),
                external_id: list.push(u.external_id.as_deref()),
                email: list.push(u.email.as_deref()),
                empty: empty_bits,
            };
            list.users.push(packed);
        }
        list
    }

    fn push(&mut self, s: Option<&str>) -> Span {
        let Some(s) = s else { return NONE };
        let start = self.text.len() as u32;
        self.text.push_str(s);
        (start, s.len() as u32)
    }

    fn get(&self, (start, len): Span) -> Option<&str> {
        if (start, len) == NONE {
            return None;
        }
        self.text.get(start as usize..(start + len) as usize)
    }

    pub fn len(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    pub fn user(&self, i: u32) -> Option<UserRef<'_>> {
        let p = self.users.get(i as usize)?;
        Some(UserRef {
            id: self.get(p.id)?,
            company_id: self.get(p.company)?,
            external_id: self.get(p.external_id),
            email: self.get(p.email),
            name_empty: p.empty & NAME_EMPTY != 0,
            surname_empty: p.empty & SURNAME_EMPTY != 0,
            email_empty: p.empty & EMAIL_EMPTY != 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_read_back_as_stored() {
        let user = |id: &str, ext: Option<&str>, email: Option<&str>, name: Option<&str>| EndUser {
            id: id.into(),
            company_id: "acme".into(),
            external_id: ext.map(Into::into),
            email: email.map(Into::into),
            name: name.map(Into::into),
            surname: None,
        };
        let list = UserList::new(vec![
            user("u0", Some("v0"), Some("a@x.io"), Some("Ann")),
            user("u1", None, Some(""), Some("")),
            user("u2", Some(""), None, None),
        ]);
        assert_eq!(list.len(), 3);
        assert_eq!(
            list.user(0),
            Some(UserRef {
                id: "u0",
                company_id: "acme",
                external_id: Some("v0"),
                email: Some("a@x.io"),
                name_empty: false,
                surname_empty: true,
                email_empty: false,
            })
        );
        let u1 = list.user(1).unwrap();
        assert_eq!((u1.external_id, u1.email), (None, Some("")));
        assert!(u1.name_empty && u1.email_empty);
        let u2 = list.user(2).unwrap();
        assert_eq!((u2.external_id, u2.email), (Some(""), None));
        assert!(u2.name_empty && u2.surname_empty && u2.email_empty);
        assert_eq!(list.user(3), None);
    }
}
