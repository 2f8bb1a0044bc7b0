//! NANP numbers for the scenario: valid geographic numbers across many real NPAs (what
//! background callers and callees look like) and the invalid shapes illegal dialers present.
//! Numbers are 11 digits with the leading country code 1, as the sensor canonicalises them.
//! This generator must never emit an invalid number where a valid one is asked for: the
//! evaluation depends on background callers being plausible.

use super::rng::Rng;

/// Real geographic NPAs in service, spread over the US and Canada.
pub const NPAS: &[u16] = &[
    201, 202, 203, 204, 205, 206, 207, 208, 209, 210, 212, 213, 214, 215, 216, 217, 218, 219, 220,
    224, 225, 226, 228, 229, 231, 234, 236, 239, 240, 248, 250, 251, 252, 253, 254, 256, 260, 262,
    267, 269, 270, 272, 276, 279, 281, 289, 301, 302, 303, 304, 305, 306, 307, 308, 309, 310, 312,
    313, 314, 315, 316, 317, 318, 319, 320, 321, 323, 325, 330, 331, 332, 334, 336, 337, 339, 340,
    341, 346, 347, 351, 352, 360, 361, 364, 380, 385, 386, 401, 402, 403, 404, 405, 406, 407, 408,
    409, 410, 412, 413, 414, 415, 416, 417, 418, 419, 423, 424, 425, 430, 432, 434, 435, 437, 438,
    440, 442, 443, 445, 447, 458, 463, 469, 470, 475, 478, 479, 480, 484, 501, 502, 503, 504, 505,
    506, 507, 508, 509, 510, 512, 513, 514, 515, 516, 517, 518, 519, 520, 530, 531, 534, 539, 540,
    541, 551, 559, 561, 562, 563, 564, 567, 570, 571, 573, 574, 575, 580, 585, 586, 601, 602, 603,
    604, 605, 606, 607, 608, 609, 610, 612, 613, 614, 615, 616, 617, 618, 619, 620, 623, 626, 628,
    629, 630, 631, 636, 641, 646, 647, 650, 651, 657, 660, 661, 662, 667, 669, 678, 680, 681, 682,
    701, 702, 703, 704, 705, 706, 707, 708, 709, 712, 713, 714, 715, 716, 717, 718, 719, 720, 724,
    725, 727, 731, 732, 734, 737, 740, 743, 747, 754, 757, 760, 762, 763, 765, 769, 770, 772, 773,
    774, 775, 778, 779, 780, 781, 785, 786, 801, 802, 803, 804, 805, 806, 807, 808, 810, 812, 813,
    814, 815, 816, 817, 818, 819, 820, 825, 828, 830, 831, 832, 838, 843, 845, 847, 848, 850, 854,
    856, 857, 858, 859, 860, 862, 863, 864, 865, 867, 870, 872, 878, 901, 902, 903, 904, 905, 906,
    907, 908, 909, 910, 912, 913, 914, 915, 916, 917, 918, 919, 920, 925, 928, 929, 930, 931, 934,
    936, 937, 938, 940, 941, 947, 949, 951, 952, 954, 956, 959, 970, 971, 972, 973, 978, 979, 980,
    984, 985, 986, 989,
];

/// Caribbean NANP NPAs, where one-ring ("wangiri") callback numbers are usually placed.
pub const CARIBBEAN_NPAS: &[u16] = &[
    242, 246, 264, 268, 284, 441, 473, 649, 664, 758, 767, 784, 809, 829, 849, 868, 869, 876,
];

/// A valid central-office code: [2-9]XX, not N11, not 555 (directory), not 950/958/959/976.
pub fn valid_nxx(rng: &mut Rng) -> u16 {
    loop {
        let nxx = rng.range(200, 999) as u16;
        if nxx % 100 == 11 || matches!(nxx, 555 | 950 | 958 | 959 | 976) {
            continue;
        }
        return nxx;
    }
}

/// "1" + NPA + NXX + line.
pub fn format_tn(npa: u16, nxx: u16, line: u16) -> String {
    format!("1{npa:03}{nxx:03}{line:04}")
}

/// A valid geographic number in a random NPA of [`NPAS`].
pub fn valid_tn(rng: &mut Rng) -> String {
    let npa = *rng.pick(NPAS);
    valid_tn_in(rng, npa)
}

pub fn valid_tn_in(rng: &mut Rng, npa: u16) -> String {
    let nxx = valid_nxx(rng);
    format_tn(npa, nxx, rng.below(10_000) as u16)
}

/// NPA-NXX of a canonical 11-digit number ("1NPANXX...").
pub fn npa_nxx(tn: &str) -> &str {
    tn.get(1..7).unwrap_or("")
}

/// A caller ID no real subscriber can have, in one of the shapes the built-in table of the
/// detector knows: N11 or N9X NPA, 37X/96X NPA, 555-01XX fiction range, NXX starting 0 or 1,
/// toll-free number presented as the caller, or too short.
pub fn invalid_tn(rng: &mut Rng) -> String {
    let line = rng.below(10_000) as u16;
    match rng.below(7) {
        0 => format_tn(
            *rng.pick(&[211, 311, 411, 611, 811, 911]),
            valid_nxx(rng),
            line,
        ),
        1 => format_tn(
            rng.range(2, 9) as u16 * 100 + 90 + rng.below(10) as u16,
            valid_nxx(rng),
            line,
        ),
        2 => format_tn(
            *rng.pick(&[370, 371, 374, 378, 960, 962, 965, 969]),
            valid_nxx(rng),
            line,
        ),
        3 => format_tn(*rng.pick(NPAS), 555, 100 + rng.below(100) as u16),
        4 => format_tn(*rng.pick(NPAS), rng.range(0, 199) as u16, line),
        5 => format_tn(
            *rng.pick(&[800, 833, 844, 855, 866, 877, 888]),
            valid_nxx(rng),
            line,
        ),
        _ => format!("1{:06}", rng.below(1_000_000)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::tn::canonicalize;

    #[test]
    fn valid_numbers_have_valid_shapes() {
        let mut r = Rng::new(3);
        for _ in 0..5000 {
            let tn = valid_tn(&mut r);
            assert_eq!(tn.len(), 11);
            let nxx: u16 = tn[4..7].parse().unwrap();
            assert!(nxx >= 200 && nxx % 100 != 11 && nxx != 555, "{tn}");
            let npa: u16 = tn[1..4].parse().unwrap();
            assert!(NPAS.contains(&npa));
            // The sensor's one normaliser keeps it as it is.
            assert_eq!(
                canonicalize(format!("+{tn}").as_bytes()).unwrap().as_str(),
                tn
            );
        }
    }

    #[test]
    fn invalid_numbers_are_never_valid_geographic_numbers() {
        let mut r = Rng::new(4);
        for _ in 0..5000 {
            let tn = invalid_tn(&mut r);
            if tn.len() != 11 {
                continue;
            }
            let npa: u16 = tn[1..4].parse().unwrap();
            let nxx: u16 = tn[4..7].parse().unwrap();
            let line: u16 = tn[7..].parse().unwrap();
            let bad = npa % 100 == 11
                || (npa / 10) % 10 == 9
                || (370..380).contains(&npa)
                || (960..970).contains(&npa)
                || (nxx == 555 && (100..200).contains(&line))
                || nxx < 200
                || [800, 833, 844, 855, 866, 877, 888].contains(&npa);
            assert!(bad, "{tn}");
        }
    }
}
