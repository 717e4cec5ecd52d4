//! Struct member offsets from the running kernel's BTF (`/sys/kernel/btf/vmlinux`).
//!
//! The exec program reads `task_struct` and `mm_struct` fields whose offsets differ
//! between kernel builds, so they are looked up here at start and handed to the kernel;
//! never hard-coded. Hand-written because aya keeps its BTF type walker private and the one
//! crate that offers this (btf-rs) is LGPL, which does not suit a statically linked agent.
//! Only what offset lookup needs is parsed: the type and string sections.

use std::{collections::HashMap, fmt};

const MAGIC: u16 = 0xeb9f;
const KIND_INT: u32 = 1;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;
/// Anonymous members are searched this deep (real kernels nest two or three levels).
const MAX_NESTING: usize = 8;

#[derive(Debug, PartialEq, Eq)]
pub enum BtfError {
    Truncated(&'static str),
    BadMagic(u16),
    UnknownKind(u32),
    NoStruct(String),
    NoMember { strukt: String, member: String },
    Bitfield { strukt: String, member: String },
}

impl fmt::Display for BtfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated(what) => write!(f, "BTF data truncated in {what}"),
            Self::BadMagic(magic) => write!(f, "not BTF data (magic {magic:#x})"),
            Self::UnknownKind(kind) => write!(f, "unknown BTF kind {kind}"),
            Self::NoStruct(name) => write!(f, "the kernel's BTF has no struct {name}"),
            Self::NoMember { strukt, member } => {
                write!(
                    f,
                    "struct {strukt} has no member {member} in the kernel's BTF"
                )
            }
            Self::Bitfield { strukt, member } => {
                write!(f, "{strukt}.{member} is a bitfield")
            }
        }
    }
}

impl std::error::Error for BtfError {}

#[derive(Clone, Copy, Debug)]
struct Member {
    name_off: u32,
    type_id: u32,
    bit_offset: u32,
    bitfield: bool,
}

#[derive(Clone, Debug)]
enum Type {
    /// Struct or union, with its members.
    Composite(Vec<Member>),
    /// typedef/const/volatile/restrict/type tag: refers to another type.
    Alias(u32),
    Other,
}

/// The parsed type section: enough to find member offsets.
pub struct KernelBtf {
    strings: Vec<u8>,
    /// Index = type id - 1.
    types: Vec<Type>,
    structs_by_name: HashMap<String, u32>,
}

fn u32_at(data: &[u8], at: usize, what: &'static str) -> Result<u32, BtfError> {
    data.get(at..at + 4)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or(BtfError::Truncated(what))
}

impl KernelBtf {
    pub fn from_sys_fs() -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let data = std::fs::read("/sys/kernel/btf/vmlinux")
            .map_err(|e| format!("reading /sys/kernel/btf/vmlinux (is BTF enabled?): {e}"))?;
        Ok(Self::parse(&data)?)
    }

    /// Parses little-endian BTF (every target iocmon ships for is little-endian).
    pub fn parse(data: &[u8]) -> Result<Self, BtfError> {
        let magic = data
            .get(..2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or(BtfError::Truncated("header"))?;
        if magic != MAGIC {
            return Err(BtfError::BadMagic(magic));
        }
        let hdr_len = u32_at(data, 4, "header")? as usize;
        let type_off = u32_at(data, 8, "header")? as usize;
        let type_len = u32_at(data, 12, "header")? as usize;
        let str_off = u32_at(data, 16, "header")? as usize;
        let str_len = u32_at(data, 20, "header")? as usize;
        let section = |off: usize, len: usize, what| {
            hdr_len
                .checked_add(off)
                .and_then(|start| Some((start, start.checked_add(len)?)))
                .and_then(|(start, end)| data.get(start..end))
                .ok_or(BtfError::Truncated(what))
        };
        let type_data = section(type_off, type_len, "type section")?;
        let strings = section(str_off, str_len, "string section")?.to_vec();

        let mut types = Vec::new();
        let mut structs_by_name = HashMap::new();
        let mut at = 0;
        while at < type_data.len() {
            let name_off = u32_at(type_data, at, "type")?;
            let info = u32_at(type_data, at + 4, "type")?;
            let size_or_type = u32_at(type_data, at + 8, "type")?;
            at += 12;
            let kind = (info >> 24) & 0x1f;
            let vlen = (info & 0xffff) as usize;
            let kind_flag = info >> 31 == 1;
            let ty = match kind {
                KIND_STRUCT | KIND_UNION => {
                    let mut members = Vec::with_capacity(vlen);
                    for i in 0..vlen {
                        let base = at + i * 12;
                        let offset = u32_at(type_data, base + 8, "member")?;
                        members.push(Member {
                            name_off: u32_at(type_data, base, "member")?,
                            type_id: u32_at(type_data, base + 4, "member")?,
                            bit_offset: if kind_flag {
                                offset & 0xff_ffff
                            } else {
                                offset
                            },
                            bitfield: kind_flag && offset >> 24 != 0,
                        });
                    }
                    at += vlen * 12;
                    if kind == KIND_STRUCT && name_off != 0 {
                        let name = string_at(&strings, name_off).to_string();
                        // The first definition wins; later ones are duplicates.
                        structs_by_name
                            .entry(name)
                            .or_insert(types.len() as u32 + 1);
                    }
                    Type::Composite(members)
                }
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    Type::Alias(size_or_type)
                }
                _ => {
                    at += match kind {
                        KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                        KIND_ARRAY => 12,
                        KIND_ENUM | KIND_FUNC_PROTO => vlen * 8,
                        KIND_DATASEC | KIND_ENUM64 => vlen * 12,
                        2 | 7 | 12 | 16 => 0, // ptr, fwd, func, float
                        other => return Err(BtfError::UnknownKind(other)),
                    };
                    Type::Other
                }
            };
            types.push(ty);
        }
        Ok(Self {
            strings,
            types,
            structs_by_name,
        })
    }

    fn ty(&self, id: u32) -> Option<&Type> {
        self.types.get((id as usize).checked_sub(1)?)
    }

    /// Follows aliases to the composite type `id` names, if it is one.
    fn composite(&self, mut id: u32) -> Option<&[Member]> {
        for _ in 0..MAX_NESTING {
            match self.ty(id)? {
                Type::Composite(members) => return Some(members),
                Type::Alias(target) => id = *target,
                Type::Other => return None,
            }
        }
        None
    }

    /// Byte offset of `member` in `struct strukt`, looking into anonymous structs and
    /// unions (randomised and grouped layouts put fields there).
    pub fn member_offset(&self, strukt: &str, member: &str) -> Result<u32, BtfError> {
        let id = *self
            .structs_by_name
            .get(strukt)
            .ok_or_else(|| BtfError::NoStruct(strukt.to_string()))?;
        let members = self
            .composite(id)
            .ok_or_else(|| BtfError::NoStruct(strukt.to_string()))?;
        match self.find(members, member, 0) {
            Some((bits, false)) => Ok(bits / 8),
            Some((_, true)) => Err(BtfError::Bitfield {
                strukt: strukt.to_string(),
                member: member.to_string(),
            }),
            None => Err(BtfError::NoMember {
                strukt: strukt.to_string(),
                member: member.to_string(),
            }),
        }
    }

    fn find(&self, members: &[Member], name: &str, depth: usize) -> Option<(u32, bool)> {
        if depth > MAX_NESTING {
            return None;
        }
        for m in members {
            if m.name_off != 0 && string_at(&self.strings, m.name_off) == name {
                return Some((m.bit_offset, m.bitfield));
            }
        }
        members.iter().filter(|m| m.name_off == 0).find_map(|m| {
            let inner = self.composite(m.type_id)?;
            let (bits, bitfield) = self.find(inner, name, depth + 1)?;
            Some((m.bit_offset + bits, bitfield))
        })
    }
}

fn string_at(strings: &[u8], offset: u32) -> &str {
    let rest = strings.get(offset as usize..).unwrap_or(&[]);
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    std::str::from_utf8(&rest[..end]).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_kernel_offsets_resolve() {
        let btf = KernelBtf::from_sys_fs().expect("this kernel has BTF");
        let mm = btf.member_offset("task_struct", "mm").unwrap();
        let arg_start = btf.member_offset("mm_struct", "arg_start").unwrap();
        let arg_end = btf.member_offset("mm_struct", "arg_end").unwrap();
        assert!(mm > 0 && arg_start > 0);
        assert_eq!(arg_end, arg_start + 8, "arg_end follows arg_start");
        assert!(btf.member_offset("task_struct", "real_parent").is_ok());
        assert!(btf.member_offset("task_struct", "tgid").is_ok());
        assert!(matches!(
            btf.member_offset("task_struct", "no_such_field"),
            Err(BtfError::NoMember { .. })
        ));
        assert!(matches!(
            btf.member_offset("no_such_struct", "x"),
            Err(BtfError::NoStruct(_))
        ));
    }

    #[test]
    fn hostile_input_is_an_error_not_a_panic() {
        assert_eq!(
            KernelBtf::parse(&[]).err(),
            Some(BtfError::Truncated("header"))
        );
        assert_eq!(
            KernelBtf::parse(&[1, 2, 3]).err(),
            Some(BtfError::BadMagic(0x201))
        );
        let mut header = vec![0x9f, 0xeb, 1, 0];
        for v in [24u32, 0, 1000, 0, 0] {
            header.extend_from_slice(&v.to_le_bytes());
        }
        assert_eq!(
            KernelBtf::parse(&header).err(),
            Some(BtfError::Truncated("type section"))
        );
    }
}
