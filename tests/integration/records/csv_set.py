"""A small hand-written CSV set covering every file, for the importer's tests."""

from __future__ import annotations

from pathlib import Path

FILES: dict[str, str] = {
    "terms.csv": "code,ordinal,starts_on\n2020-1,1,2020-02-01\n2020-2,2,2020-09-01\n2021-1,3,2021-02-01\n",
    "competencies.csv": (
        "id,name,kind,domain,description\n"
        "2.A.1.a,Reading Comprehension,skill,Basic Skills,Understanding written sentences\n"
        '2.C.3.a,Computers and Electronics,knowledge,Engineering,"Circuit boards, processors"\n'
        "T43232306,Data base user interface software,technology,Software,\n"
    ),
    "occupations.csv": (
        "id,title,description\n"
        "15-2051.00,Data Scientists,Develop models\n47-2111.00,Electricians,Install wiring\n"
    ),
    "occupation_competencies.csv": (
        "occupation_id,competency_id,importance,level\n"
        "15-2051.00,2.A.1.a,0.75,4.5\n15-2051.00,T43232306,1,\n47-2111.00,2.C.3.a,0.8,5\n"
    ),
    "demand.csv": (
        "occupation_id,region,period,postings,growth\n"
        "15-2051.00,north,2020,120,0.08\n15-2051.00,north,2020-Q3,40,\n47-2111.00,south,2021-03,15,-0.02\n"
    ),
    "modules.csv": (
        "id,code,title,description,track,department,level,credits,delivery,capacity,pass_grade\n"
        "M1,MAT101,Algebra,,academic,Maths,1,5,offline,120,60\n"
        'M2,DAT201,Databases,"Tables, keys and SQL",academic,Computing,2,5,blended,60,\n'
        "M3,ELE110,Wiring practice,,vocational,Trades,1,7.5,offline,20,50\n"
        "M4,PRJ300,Industry project,,project,Computing,3,10,blended,,60\n"
    ),
    "module_competencies.csv": (
        "module_id,competency_id,weight,level\nM1,2.A.1.a,0.3,2\nM2,T43232306,0.9,3\nM3,2.C.3.a,0.8,2\n"
    ),
    "prerequisites.csv": "module_id,group,requires_module_id,min_grade\nM2,1,M1,\nM4,1,M2,65\nM4,1,M3,\n",
    "offerings.csv": "module_id,term\nM1,2020-1\nM1,2021-1\nM2,2020-2\n",
    "programs.csv": (
        "id,name,department,credits_to_graduate,target_academic,target_vocational,target_project\n"
        "P1,Applied Data,Computing,180,0.5,0.3,0.2\n"
    ),
    "program_occupations.csv": "program_id,occupation_id\nP1,15-2051.00\n",
    "program_modules.csv": "program_id,module_id\nP1,M1\nP1,M4\n",
    "advisors.csv": "id,name,department\nA1,Dr. Vega,Computing\n",
    "students.csv": (
        "id,program_id,entry_term,entry_route,advisor_id,max_credits_per_term,status\n"
        "S1,P1,2020-1,general,A1,30,active\nS2,P1,2020-1,vocational,A1,,\nS3,P1,2020-2,transfer,,25,active\n"
    ),
    "student_attributes.csv": "student_id,name,value\nS1,first_generation,yes\nS2,first_generation,no\n",
    "enrollments.csv": (
        "student_id,module_id,term,status,grade\n"
        "S1,M1,2020-1,completed,72\nS1,M3,2020-1,completed,55\nS1,M2,2020-2,failed,41\n"
        "S2,M1,2020-1,,48\nS2,M3,2020-1,,80\nS2,M1,2020-2,completed,66\n"
        "S3,M1,2020-2,completed,90\nS3,M2,2021-1,in_progress,\n"
    ),
    "goals.csv": "student_id,occupation_id,weight,set_term\nS1,15-2051.00,1,\nS2,47-2111.00,0.5,2020-2\n",
}


def write_csv_set(directory: Path, files: dict[str, str] | None = None) -> Path:
    """Write ``files`` (default: the whole small set) into ``directory``; return it."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in (FILES if files is None else files).items():
        (directory / name).write_text(text, encoding="utf-8")
    return directory
