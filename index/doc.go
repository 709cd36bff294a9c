// Package index owns Lumen's metadata: patients, studies, series and instances with the
// attributes that C-FIND and QIDO-RS match on, computed counts, per-instance DICOM JSON
// metadata and pixel data frame offsets.
//
// The query model implements the attribute matching of DICOM PS3.4 §C.2.2.2 (single
// value, universal, wildcard, range, list of UIDs) once, for both C-FIND and QIDO-RS;
// see Query. Person names match case-insensitively; with Fuzzy, also accent-insensitively
// on the start of any name component. The answers are built once too: Result.Records
// gives the records of a result at any level, and Answer the data set answering with one
// (PS3.4 C.4.1.2.3, PS3.18 10.6.3.3: its return keys and the character set of its text). Beyond PS3.4, for the EMR surfaces: exact lists of
// values (Filter.Values), study classes (StudyClass: the service lines), pages with their
// total counted by the index (Query.Total, MaxTotal, CountOnly) in either order
// (Query.Reverse), so that no caller loads every match to page or filter it. FindSeq
// streams the records of a query as the database reads them (C-FIND answers each match
// as it comes). Study-level answers come newest first (StudyDate, then the normalised
// StudyTime, then the order of indexing, all descending); a page costs what the page
// costs, not what the matches do (see index/sqlindex).
//
// The index also keeps the work queue (Queue: thumbnails, forwards), so that any replica
// can do a job and a restart loses nothing; a Worker runs its jobs, each registered kind
// in its own loop with its own batching and retry policy.
//
// Backends: index/sqlite (embedded default) and index/postgres, both built on
// index/sqlindex; index/indextest is the contract suite.
package index
