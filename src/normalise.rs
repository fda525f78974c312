//! Normalisation of identifier values before they are keyed into pseudonyms, and of labels
//! before they are looked up in code lists. Pure functions, versioned: the version is part of
//! every HMAC input, so changing any rule here means bumping [`NORMALISATION_VERSION`].
//!
//! Names: Unicode NFKC, lower case, Cyrillic transliterated to Latin, diacritics stripped,
//! letters without a decomposition folded (ł→l, ø→o, æ→ae, ß→ss, ...), and every character that
//! is not a letter or digit removed, so "Anna-Marija  Ž." and "ANNA MARIJA Z" are equal.
//!
//! Transliteration follows the passport standards, because agencies copy Latin names from
//! documents: Ukrainian by the national system of 2010 (KMU resolution 55, used in Ukrainian
//! passports), Russian and Belarusian by ICAO Doc 9303 (2013). A name is read as Russian when it
//! has a letter only Russian uses (ы э ё ъ) and as Ukrainian otherwise. Limits: a Russian name
//! without those letters but with г or и is transliterated the Ukrainian way (Ирина → iryna, not
//! irina), and national transcriptions (Lithuanian "Ševčenko", Polish "Szewczenko") do not link to
//! the passport spelling "Shevchenko". Two records written in Cyrillic always link to each other.

use chrono::NaiveDate;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Version of the normalisation rules, part of every pseudonym's HMAC input.
pub const NORMALISATION_VERSION: u32 = 1;

/// A person's name, normalised for linkage. `None` when nothing is left.
pub fn name(raw: &str) -> Option<String> {
    if raw.is_ascii() {
        return ascii_name(raw);
    }
    unicode_name(raw)
}

/// [`name`] of ASCII text: NFKC, NFD and the transliteration leave it as it is, so only the
/// letters and digits, lower-cased, remain.
fn ascii_name(raw: &str) -> Option<String> {
    let out: String = raw
        .bytes()
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| b.to_ascii_lowercase() as char)
        .collect();
    if out.is_empty() { None } else { Some(out) }
}

fn unicode_name(raw: &str) -> Option<String> {
    let lowered: String = raw.nfkc().flat_map(char::to_lowercase).collect();
    let latin = transliterate_cyrillic(&lowered);
    let mut out = String::with_capacity(latin.len());
    for c in latin.nfd() {
        if is_combining_mark(c) {
            continue;
        }
        match fold_letter(c) {
            Some(s) => out.push_str(s),
            None if c.is_alphanumeric() => out.extend(c.to_lowercase()),
            None => {}
        }
    }
    // A precomposed Cyrillic letter outside the tables (ѐ, ѝ, ...) leaves its base letter
    // once its mark is stripped: transliterate that too, so normalising is idempotent.
    if out.chars().any(is_cyrillic) {
        out = transliterate_cyrillic(&out)
            .chars()
            .filter(|c| c.is_alphanumeric())
            .collect();
    }
    if out.is_empty() { None } else { Some(out) }
}

/// A label (code-list value, country name, column header), folded for lookup: lower case,
/// no diacritics, `_` and `-` read as spaces, runs of spaces collapsed, trimmed.
pub fn label(raw: &str) -> String {
    if raw.is_ascii() {
        return ascii_label(raw);
    }
    unicode_label(raw)
}

/// [`label`] of ASCII text (no decomposition, no marks, no folded letters).
fn ascii_label(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut space = false;
    for b in raw.bytes() {
        let c = b as char;
        if c.is_whitespace() || c == '_' || c == '-' {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        out.push(c.to_ascii_lowercase());
    }
    out
}

fn unicode_label(raw: &str) -> String {
    let lowered: String = raw.nfkc().flat_map(char::to_lowercase).collect();
    let mut out = String::with_capacity(lowered.len());
    let mut space = false;
    for c in lowered.nfd() {
        if is_combining_mark(c) {
            continue;
        }
        let piece: &str;
        let mut buf = [0u8; 4];
        if c.is_whitespace() || c == '_' || c == '-' {
            space = true;
            continue;
        } else if let Some(s) = fold_letter(c) {
            piece = s;
        } else {
            piece = c.encode_utf8(&mut buf);
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        out.push_str(piece);
    }
    out
}

/// A document number: upper-case letters and digits only.
pub fn document(raw: &str) -> Option<String> {
    if raw.is_ascii() {
        let s: String = raw
            .bytes()
            .filter(u8::is_ascii_alphanumeric)
            .map(|b| b.to_ascii_uppercase() as char)
            .collect();
        return if s.is_empty() { None } else { Some(s) };
    }
    let s: String = raw
        .nfkc()
        .flat_map(char::to_uppercase)
        .filter(|c| c.is_alphanumeric())
        .collect();
    if s.is_empty() { None } else { Some(s) }
}

/// A partner's own case or referral number: NFKC, upper case, whitespace removed.
pub fn code(raw: &str) -> Option<String> {
    if raw.is_ascii() {
        let s: String = raw
            .chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c.to_ascii_uppercase())
            .collect();
        return if s.is_empty() { None } else { Some(s) };
    }
    let s: String = raw
        .nfkc()
        .flat_map(char::to_uppercase)
        .filter(|c| !c.is_whitespace())
        .collect();
    if s.is_empty() { None } else { Some(s) }
}

/// Why a date was rejected. Dates are never guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateProblem {
    /// Matches none of the declared formats.
    Invalid,
    /// Has the shape of a date but does not exist (31.02.2025).
    Impossible,
    /// Two declared formats read it as two different dates (03/04/2025).
    Ambiguous,
}

/// Parses a date with the partner's declared formats (chrono syntax). ISO 8601
/// (`YYYY-MM-DD`, optionally followed by a time) is always accepted as well.
pub fn date(raw: &str, formats: &[String]) -> Result<NaiveDate, DateProblem> {
    let s = raw.trim();
    let mut found: Option<NaiveDate> = None;
    let mut impossible = false;
    let iso = "%Y-%m-%d".to_string();
    // ISO 8601 with a time: the time must be a real one too (2024-02-29T25:00:00 is not a
    // date tip takes); the partner's own formats still get the whole text.
    let iso_part = match s.as_bytes().get(10) {
        Some(b'T' | b' ') if valid_time(&s[11..]) => Some(&s[..10]),
        Some(b'T' | b' ') => None,
        _ => Some(s),
    };
    for (f, text) in formats
        .iter()
        .map(|f| (f, s))
        .chain(iso_part.map(|p| (&iso, p)))
    {
        let parsed = match (f == &iso).then(|| iso_digits(text)).flatten() {
            // Exactly `dddd-dd-dd`: read directly (what chrono would read, without parsing the
            // format each time); a date that does not exist is impossible, as chrono says.
            Some(Some(d)) => Ok(d),
            Some(None) => {
                impossible = true;
                continue;
            }
            None => NaiveDate::parse_from_str(text, f),
        };
        match parsed {
            Ok(d) => match found {
                Some(prev) if prev != d => return Err(DateProblem::Ambiguous),
                _ => found = Some(d),
            },
            Err(e) => {
                use chrono::format::ParseErrorKind::*;
                if matches!(e.kind(), OutOfRange | Impossible) && shape_matches(text, f) {
                    impossible = true;
                }
            }
        }
    }
    match found {
        Some(d) => Ok(d),
        None if impossible => Err(DateProblem::Impossible),
        None => Err(DateProblem::Invalid),
    }
}

/// `Some(date)` for text that is exactly `dddd-dd-dd` and a real date, `Some(None)` when it has
/// that shape but no such date exists, `None` for any other text.
fn iso_digits(text: &str) -> Option<Option<NaiveDate>> {
    let b = text.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && [0, 1, 2, 3, 5, 6, 8, 9]
            .iter()
            .all(|&i| b[i].is_ascii_digit());
    if !shape {
        return None;
    }
    let num = |r: std::ops::Range<usize>| text[r].parse::<u32>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    Some(NaiveDate::from_ymd_opt(y as i32, m, d))
}

/// `HH:MM`, `HH:MM:SS` or `HH:MM:SS.fff`, then nothing, `Z` or an offset `±HH:MM`.
fn valid_time(t: &str) -> bool {
    let (clock, zone) = match t.find(['Z', 'z', '+', '-']) {
        Some(i) => (&t[..i], &t[i..]),
        None => (t, ""),
    };
    let zone_ok = zone.is_empty()
        || zone.eq_ignore_ascii_case("z")
        || chrono::NaiveTime::parse_from_str(&zone[1..], "%H:%M").is_ok();
    let clock_ok = ["%H:%M:%S%.f", "%H:%M:%S", "%H:%M"]
        .iter()
        .any(|f| chrono::NaiveTime::parse_from_str(clock, f).is_ok());
    zone_ok && clock_ok
}

/// True when `s` has digits where the format has numeric fields and the same separators,
/// so a parse failure means the calendar date does not exist rather than a wrong shape.
fn shape_matches(s: &str, format: &str) -> bool {
    let seps = |x: &str| -> String {
        x.chars()
            .filter(|c| !c.is_ascii_alphanumeric() && *c != '%')
            .collect()
    };
    s.chars()
        .all(|c| c.is_ascii_digit() || !c.is_alphanumeric())
        && seps(s) == seps(format)
}

/// Letters that have no Unicode decomposition into a base letter and a mark.
fn fold_letter(c: char) -> Option<&'static str> {
    Some(match c {
        'ł' | 'Ł' => "l",
        'ø' | 'Ø' => "o",
        'æ' | 'Æ' => "ae",
        'œ' | 'Œ' => "oe",
        'ß' | 'ẞ' => "ss",
        'đ' | 'Đ' | 'ð' | 'Ð' => "d",
        'þ' | 'Þ' => "th",
        'ı' => "i",
        'ħ' | 'Ħ' => "h",
        'ŧ' | 'Ŧ' => "t",
        'ŋ' | 'Ŋ' => "n",
        'ĸ' => "k",
        _ => return None,
    })
}

fn is_cyrillic(c: char) -> bool {
    ('\u{0400}'..='\u{04FF}').contains(&c)
}

/// Transliterates lower-case Cyrillic to Latin (see the module documentation for the systems).
pub fn transliterate_cyrillic(s: &str) -> String {
    if !s.chars().any(is_cyrillic) {
        return s.to_string();
    }
    let russian = s.chars().any(|c| matches!(c, 'ы' | 'э' | 'ё' | 'ъ'));
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() * 2);
    for (i, &c) in chars.iter().enumerate() {
        let word_start = i == 0 || !chars[i - 1].is_alphabetic();
        let prev = if i > 0 { chars[i - 1] } else { ' ' };
        let latin = if russian {
            icao_russian(c)
        } else {
            ukrainian_national(c, prev, word_start)
        };
        match latin {
            Some(t) => out.push_str(t),
            None => out.push(c),
        }
    }
    out
}

/// ICAO 9303 (Russian passports). None for a character that is not Cyrillic.
fn icao_russian(c: char) -> Option<&'static str> {
    Some(match c {
        'а' => "a",
        'б' => "b",
        'в' => "v",
        'г' | 'ґ' => "g",
        'д' => "d",
        'е' | 'ё' | 'э' | 'є' => "e",
        'ж' => "zh",
        'з' => "z",
        'и' | 'й' | 'і' | 'ї' => "i",
        'к' => "k",
        'л' => "l",
        'м' => "m",
        'н' => "n",
        'о' => "o",
        'п' => "p",
        'р' => "r",
        'с' => "s",
        'т' => "t",
        'у' | 'ў' => "u",
        'ф' => "f",
        'х' => "kh",
        'ц' => "ts",
        'ч' => "ch",
        'ш' => "sh",
        'щ' => "shch",
        'ъ' => "ie",
        'ы' => "y",
        'ь' => "",
        'ю' => "iu",
        'я' => "ia",
        _ => return None,
    })
}

/// The Ukrainian national system of 2010 (Ukrainian passports): some letters read
/// differently at the start of a word, and `зг` becomes `zgh`.
fn ukrainian_national(c: char, prev: char, word_start: bool) -> Option<&'static str> {
    let initial = |start: &'static str, inner: &'static str| if word_start { start } else { inner };
    Some(match c {
        'а' => "a",
        'б' => "b",
        'в' => "v",
        'г' if prev == 'з' => "gh",
        'г' => "h",
        'ґ' => "g",
        'д' => "d",
        'е' | 'э' | 'ё' => "e",
        'є' => initial("ye", "ie"),
        'ж' => "zh",
        'з' => "z",
        'и' | 'ы' => "y",
        'і' => "i",
        'ї' => initial("yi", "i"),
        'й' => initial("y", "i"),
        'к' => "k",
        'л' => "l",
        'м' => "m",
        'н' => "n",
        'о' => "o",
        'п' => "p",
        'р' => "r",
        'с' => "s",
        'т' => "t",
        'у' | 'ў' => "u",
        'ф' => "f",
        'х' => "kh",
        'ц' => "ts",
        'ч' => "ch",
        'ш' => "sh",
        'щ' => "shch",
        'ь' | 'ъ' => "",
        'ю' => initial("yu", "iu"),
        'я' => initial("ya", "ia"),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_golden() {
        let cases = [
            ("Jonas", "jonas"),
            ("  JONAS ", "jonas"),
            ("Žemaitė", "zemaite"),
            ("ŽEMAITĖ", "zemaite"),
            ("Ąžuolas Čiurlionis", "azuolasciurlionis"),
            ("Ėglė-Gabija", "eglegabija"),
            ("Eglė Gabija", "eglegabija"),
            ("Kārlis Bērziņš", "karlisberzins"),
            ("Ģirts Ķēniņš Ļ", "girtskeninsl"),
            ("Łukasz Wójcik", "lukaszwojcik"),
            ("Źdźbło Żółć Ńś", "zdzblozolcns"),
            ("Tõnu Mäe-Üürike", "tonumaeuurike"),
            ("Søren Ærø Åse", "sorenaeroase"),
            ("Weiß", "weiss"),
            ("O'Brien", "obrien"),
            ("d’Artagnan", "dartagnan"),
            ("Олександр", "oleksandr"),
            ("Шевченко", "shevchenko"),
            ("Юлія", "yuliia"),
            ("Євгенія", "yevheniia"),
            ("Згурський", "zghurskyi"),
            ("Наталья", "natalia"),
            ("Артём Юрьевич", "artemiurevich"),
            ("Ксения", "ksenyia"),
            ("Фёдор", "fedor"),
            ("Ｊｏｎａｓ", "jonas"),
        ];
        for (raw, want) in cases {
            assert_eq!(name(raw).as_deref(), Some(want), "{raw}");
        }
        assert_eq!(name(" - ' "), None);
    }

    #[test]
    fn labels_fold() {
        assert_eq!(
            label("  Seksualinis  IŠNAUDOJIMAS "),
            "seksualinis isnaudojimas"
        );
        assert_eq!(label("follow-up"), "follow up");
        assert_eq!(label("follow_up"), "follow up");
        assert_eq!(label("Debt bondage "), "debt bondage");
    }

    #[test]
    fn documents_and_codes() {
        assert_eq!(document(" lt 12-345 678 ").as_deref(), Some("LT12345678"));
        assert_eq!(code("lt-2025 / 001").as_deref(), Some("LT-2025/001"));
        assert_eq!(code("   "), None);
    }

    #[test]
    fn dates_with_times_are_checked_too() {
        let none: Vec<String> = vec![];
        assert!(date("2024-02-29T12:30:00", &none).is_ok());
        assert!(date("2024-02-29T12:30:00.5Z", &none).is_ok());
        assert!(date("2024-02-29 12:30", &none).is_ok());
        assert!(date("2024-02-29T12:30:00+02:00", &none).is_ok());
        assert_eq!(
            date("2024-02-29T25:00:00", &none),
            Err(DateProblem::Invalid)
        );
        assert_eq!(date("2024-02-29T12:61", &none), Err(DateProblem::Invalid));
        assert_eq!(date("2024-02-29Tnoon", &none), Err(DateProblem::Invalid));
        // Not a date, but never a panic on a character that is not one byte.
        assert!(date("2024-02-29é12", &none).is_err());
        assert!(date("2024-02-2éT12:00", &none).is_err());
    }

    #[test]
    fn dates() {
        let dm = vec!["%d.%m.%Y".to_string()];
        assert_eq!(
            date("03.04.2025", &dm),
            Ok(NaiveDate::from_ymd_opt(2025, 4, 3).unwrap())
        );
        assert_eq!(
            date("2025-04-03", &dm),
            Ok(NaiveDate::from_ymd_opt(2025, 4, 3).unwrap())
        );
        assert_eq!(
            date("2025-04-03T10:00:00Z", &[]),
            Ok(NaiveDate::from_ymd_opt(2025, 4, 3).unwrap())
        );
        assert_eq!(date("31.02.2025", &dm), Err(DateProblem::Impossible));
        assert_eq!(date("2025-02-30", &[]), Err(DateProblem::Impossible));
        assert_eq!(date("yesterday", &dm), Err(DateProblem::Invalid));
        let both = vec!["%d/%m/%Y".to_string(), "%m/%d/%Y".to_string()];
        assert_eq!(date("03/04/2025", &both), Err(DateProblem::Ambiguous));
        assert_eq!(
            date("13/04/2025", &both),
            Ok(NaiveDate::from_ymd_opt(2025, 4, 13).unwrap())
        );
    }

    /// normalise(normalise(x)) == normalise(x), over generated strings mixing the scripts and
    /// punctuation partners use.
    /// The ASCII fast paths give exactly what the general path gives, on every printable and
    /// control ASCII character in random strings.
    #[test]
    fn ascii_fast_paths_agree_with_the_unicode_path() {
        let mut seed = 7u64;
        for _ in 0..20_000 {
            let len = (next(&mut seed) % 12) as usize;
            let s: String = (0..len)
                .map(|_| (next(&mut seed) % 128) as u8 as char)
                .collect();
            assert_eq!(ascii_name(&s), unicode_name(&s), "{s:?}");
            assert_eq!(ascii_label(&s), unicode_label(&s), "{s:?}");
            let doc = |x: &str| {
                let t: String = x
                    .nfkc()
                    .flat_map(char::to_uppercase)
                    .filter(|c| c.is_alphanumeric())
                    .collect();
                (!t.is_empty()).then_some(t)
            };
            assert_eq!(document(&s), doc(&s), "{s:?}");
            let code_slow = |x: &str| {
                let t: String = x
                    .nfkc()
                    .flat_map(char::to_uppercase)
                    .filter(|c| !c.is_whitespace())
                    .collect();
                (!t.is_empty()).then_some(t)
            };
            assert_eq!(code(&s), code_slow(&s), "{s:?}");
        }
    }

    /// The direct reading of `dddd-dd-dd` agrees with chrono's `%Y-%m-%d`, on real dates,
    /// impossible ones and near misses.
    #[test]
    fn iso_dates_read_directly_agree_with_chrono() {
        let mut seed = 11u64;
        for _ in 0..20_000 {
            let (y, m, d) = (
                next(&mut seed) % 3000,
                next(&mut seed) % 14,
                next(&mut seed) % 33,
            );
            let s = format!("{y:04}-{m:02}-{d:02}");
            let ours = iso_digits(&s).expect("the shape");
            assert_eq!(ours, NaiveDate::parse_from_str(&s, "%Y-%m-%d").ok(), "{s}");
            assert_eq!(date(&s, &[]).ok(), ours, "{s}");
            if ours.is_none() {
                assert_eq!(date(&s, &[]), Err(DateProblem::Impossible), "{s}");
            }
        }
        assert_eq!(iso_digits("2025-3-03"), None);
        assert_eq!(iso_digits("2025-03-03T10:00"), None);
    }

    #[test]
    fn idempotent_property() {
        let alphabet: Vec<char> =
            "aAąĄčČęėĖįšųūžŽāēģīķļņłńóśźżõäöüåøæßЖжШшЮюЇїЄєҐґЫыЁёЪъ -'’.,_ＡŁ0123"
                .chars()
                .collect();
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            let len = (next(&mut state) % 16) as usize;
            let s: String = (0..len)
                .map(|_| alphabet[(next(&mut state) % alphabet.len() as u64) as usize])
                .collect();
            if let Some(n) = name(&s) {
                assert_eq!(name(&n).as_deref(), Some(n.as_str()), "name({s:?})");
            }
            let l = label(&s);
            assert_eq!(label(&l), l, "label({s:?})");
            if let Some(d) = document(&s) {
                assert_eq!(document(&d).as_deref(), Some(d.as_str()));
            }
            if let Some(c) = code(&s) {
                assert_eq!(code(&c).as_deref(), Some(c.as_str()));
            }
        }
    }

    fn next(s: &mut u64) -> u64 {
        *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}
